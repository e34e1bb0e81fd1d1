// Certificates for TLS tests, made with OpenSSL at run time: a CA, and
// certificates it signs for 127.0.0.1 / localhost, valid over any window
// (an expired one included).
#pragma once

#include <string>

namespace retrain::testing {

struct PemPair {
  std::string cert;  // PEM certificate
  std::string key;   // PEM private key (EC P-256)
};

// A self-signed CA named `name`, valid for a day.
PemPair MakeCa(const std::string& name);

// A certificate for `name` signed by `ca`, with subject alternative names
// DNS:localhost and IP:127.0.0.1, valid from now + not_before_s to now +
// not_after_s seconds (both may be negative: an expired certificate).
PemPair MakeCertificate(const PemPair& ca, const std::string& name, long not_before_s = -60,
                        long not_after_s = 86400);

}  // namespace retrain::testing
