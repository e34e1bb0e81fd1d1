"""The protocol buffer wire format, as far as the bench scripts need it.

Standard library only, so that scripts which run without Pillow or crcmod
(fill_state.py) share it with those that need them (pillow_build.py).
"""


def varint(v):
    """v as a base-128 varint; negative int64 values as their 10-byte two's complement."""
    v &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | 0x80 if v else b)
        if not v:
            return bytes(out)


def read_varint(buf, pos):
    """(value, position after it) of the varint at buf[pos]; IndexError if it is cut off."""
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def len_field(field, payload):
    """A length-delimited field: key, length, payload."""
    return varint((field << 3) | 2) + varint(len(payload)) + payload


def field_spans(buf):
    """Yields (field number, wire type, value, start, end) of each top-level field of
    one serialised message: value is an int for VARINT, bytes otherwise, and
    buf[start:end] is the whole field, key included. ValueError on a truncated
    field or a wire type other than VARINT, I64, LEN and I32."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        else:
            if wire == 2:
                n, pos = read_varint(buf, pos)
            elif wire in (1, 5):
                n = 8 if wire == 1 else 4
            else:
                raise ValueError('unsupported wire type %d in field %d' % (wire, field))
            value = buf[pos:pos + n]
            if len(value) != n:
                raise ValueError('truncated field %d' % field)
            pos += n
        yield field, wire, value, start, pos


def fields(buf):
    """Yields (field number, wire type, value) of each top-level field, as field_spans."""
    for field, wire, value, _, _ in field_spans(buf):
        yield field, wire, value


def without_fields(buf, drop):
    """The serialised message without its top-level fields numbered in `drop`."""
    return b''.join(buf[start:end] for field, _, _, start, end in field_spans(buf)
                    if field not in drop)
