/// Media: decoding and encoding of clips (FFmpeg) and images (libpng).
public enum Media {}
