// The features of each tf.Example record in a retrain shard: the nine that
// TensorFlow's build_image_data.py writes, with the same keys and values.
#pragma once

namespace retrain::dataset {

inline constexpr char kImageEncoded[] = "image/encoded";        // bytes: baseline RGB JPEG
inline constexpr char kImageHeight[] = "image/height";          // int64
inline constexpr char kImageWidth[] = "image/width";            // int64
inline constexpr char kImageColorspace[] = "image/colorspace";  // bytes: kColorspace
inline constexpr char kImageChannels[] = "image/channels";      // int64: kChannels
inline constexpr char kImageFormat[] = "image/format";          // bytes: kFormatJpeg
inline constexpr char kImageFilename[] = "image/filename";      // bytes: the file's base name
inline constexpr char kClassLabel[] = "image/class/label";      // int64: the label id
inline constexpr char kClassText[] = "image/class/text";        // bytes: the label's name

inline constexpr char kColorspace[] = "RGB";
inline constexpr int kChannels = 3;
inline constexpr char kFormatJpeg[] = "JPEG";

}  // namespace retrain::dataset
