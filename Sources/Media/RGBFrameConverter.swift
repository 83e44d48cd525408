import CFFmpeg

/// Converts decoded `AVFrame`s of any pixel format to `RGBImage`s through libswscale, fitting them
/// to a requested size: centre-crop (the crop is applied to the source with `av_frame_apply_cropping`
/// before scaling) or letterbox (scale to fit, then pad with black). Honours the frame's colour
/// matrix (BT.601/709/2020) and range (limited/full) where it declares them.
final class RGBFrameConverter {
    private let path: String
    private let target: (width: Int, height: Int)?
    private let mode: VideoResizeMode
    private let limits: VideoReadLimits
    private var scaler: OpaquePointer? = nil
    /// Aligned RGB24 scratch the scaler writes into before rows are copied out.
    private var scratch: UnsafeMutablePointer<UInt8>? = nil
    private var scratchCapacity = 0

    init(path: String, target: (width: Int, height: Int)?, mode: VideoResizeMode, limits: VideoReadLimits) {
        self.path = path
        self.target = target
        self.mode = mode
        self.limits = limits
    }

    deinit {
        sws_freeContext(scaler)
        av_free(scratch)
    }

    func convert(_ frame: UnsafeMutablePointer<AVFrame>) throws -> RGBImage {
        let sourceWidth = Int(frame.pointee.width), sourceHeight = Int(frame.pointee.height)
        guard sourceWidth > 0, sourceHeight > 0 else {
            throw MediaError.corrupt(path: path, reason: "a decoded frame has no size")
        }
        if sourceWidth > limits.maxWidth {
            throw MediaError.tooLarge(path: path, what: "frame width \(sourceWidth)", limit: "\(limits.maxWidth) pixels (maxWidth)")
        }
        if sourceHeight > limits.maxHeight {
            throw MediaError.tooLarge(path: path, what: "frame height \(sourceHeight)", limit: "\(limits.maxHeight) pixels (maxHeight)")
        }
        let outputWidth = target?.width ?? sourceWidth, outputHeight = target?.height ?? sourceHeight
        var scaledWidth = outputWidth, scaledHeight = outputHeight
        if target != nil {
            switch mode {
            case .centerCrop:
                try crop(frame, toAspectOf: outputWidth, outputHeight)
            case .letterbox:
                // Compare sourceWidth/sourceHeight with outputWidth/outputHeight without rounding.
                if sourceWidth * outputHeight > outputWidth * sourceHeight {
                    scaledHeight = max(1, Int((Double(outputWidth) * Double(sourceHeight) / Double(sourceWidth)).rounded()))
                } else {
                    scaledWidth = max(1, Int((Double(outputHeight) * Double(sourceWidth) / Double(sourceHeight)).rounded()))
                }
            }
        }
        let rowBytes = scaledWidth * 3
        let stride = (rowBytes + 63) & ~63
        try scale(frame, width: scaledWidth, height: scaledHeight, stride: stride)

        var pixels = [UInt8](repeating: 0, count: outputWidth * outputHeight * 3)
        let left = (outputWidth - scaledWidth) / 2, top = (outputHeight - scaledHeight) / 2
        pixels.withUnsafeMutableBufferPointer { output in
            for row in 0..<scaledHeight {
                (output.baseAddress! + ((top + row) * outputWidth + left) * 3)
                    .update(from: scratch! + row * stride, count: rowBytes)
            }
        }
        return try RGBImage(width: outputWidth, height: outputHeight, pixels: pixels)
    }

    /// Narrows the frame to the largest centred rectangle with the aspect `width : height`.
    private func crop(_ frame: UnsafeMutablePointer<AVFrame>, toAspectOf width: Int, _ height: Int) throws {
        let sourceWidth = Int(frame.pointee.width), sourceHeight = Int(frame.pointee.height)
        var cropWidth = sourceWidth, cropHeight = sourceHeight
        if sourceWidth * height > width * sourceHeight {
            cropWidth = min(sourceWidth, max(1, Int((Double(sourceHeight) * Double(width) / Double(height)).rounded())))
        } else {
            cropHeight = min(sourceHeight, max(1, Int((Double(sourceWidth) * Double(height) / Double(width)).rounded())))
        }
        guard cropWidth != sourceWidth || cropHeight != sourceHeight else { return }
        let left = (sourceWidth - cropWidth) / 2, top = (sourceHeight - cropHeight) / 2
        frame.pointee.crop_left = left
        frame.pointee.crop_right = sourceWidth - cropWidth - left
        frame.pointee.crop_top = top
        frame.pointee.crop_bottom = sourceHeight - cropHeight - top
        let result = av_frame_apply_cropping(frame, Int32(AV_FRAME_CROP_UNALIGNED))
        if result < 0 {
            throw MediaError.unsupported(path: path, reason: "cannot crop frames of this pixel format: \(FFmpeg.message(result))")
        }
    }

    private func scale(_ frame: UnsafeMutablePointer<AVFrame>, width: Int, height: Int, stride: Int) throws {
        let sourceFormat = AVPixelFormat(rawValue: frame.pointee.format)
        // Bicubic for resizing and chroma upsampling; full-resolution chroma and exact rounding so
        // colours survive round trips.
        let flags = SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT
        scaler = sws_getCachedContext(scaler, frame.pointee.width, frame.pointee.height, sourceFormat,
                                      Int32(width), Int32(height), AV_PIX_FMT_RGB24, flags, nil, nil, nil)
        guard let scaler else {
            let name = av_get_pix_fmt_name(sourceFormat).map { String(cString: $0) } ?? "\(frame.pointee.format)"
            throw MediaError.unsupported(path: path, reason: "cannot convert pixel format \(name) to RGB")
        }
        applyColorimetry(of: frame, to: scaler)

        let needed = stride * height + 64
        if needed > scratchCapacity {
            av_free(scratch)
            guard let raw = av_malloc(needed) else { throw MediaError.unreadable(path: path, reason: "out of memory") }
            scratch = raw.bindMemory(to: UInt8.self, capacity: needed)
            scratchCapacity = needed
        }
        let data = frame.pointee.data, lines = frame.pointee.linesize
        let sourcePlanes: [UnsafePointer<UInt8>?] = [data.0, data.1, data.2, data.3, data.4, data.5, data.6, data.7].map { $0.map { UnsafePointer($0) } }
        let sourceStrides: [Int32] = [lines.0, lines.1, lines.2, lines.3, lines.4, lines.5, lines.6, lines.7]
        let destinationPlanes: [UnsafeMutablePointer<UInt8>?] = [scratch, nil, nil, nil]
        let destinationStrides: [Int32] = [Int32(stride), 0, 0, 0]
        let rows = sws_scale(scaler, sourcePlanes, sourceStrides, 0, frame.pointee.height, destinationPlanes, destinationStrides)
        if rows != Int32(height) {
            throw MediaError.corrupt(path: path, reason: "converting a frame to RGB failed (\(rows < 0 ? FFmpeg.message(rows) : "\(rows) of \(height) rows"))")
        }
    }

    /// Tells swscale which YUV→RGB matrix and range the frame uses; libswscale assumes BT.601
    /// limited range otherwise. Frames that are already RGB have no details to set.
    private func applyColorimetry(of frame: UnsafeMutablePointer<AVFrame>, to scaler: OpaquePointer) {
        var inverseTable: UnsafeMutablePointer<Int32>? = nil, table: UnsafeMutablePointer<Int32>? = nil
        var sourceRange: Int32 = 0, destinationRange: Int32 = 0
        var brightness: Int32 = 0, contrast: Int32 = 0, saturation: Int32 = 0
        guard sws_getColorspaceDetails(scaler, &inverseTable, &sourceRange, &table, &destinationRange,
                                       &brightness, &contrast, &saturation) >= 0 else { return }
        let space = frame.pointee.colorspace
        // libswscale's SWS_CS_* values equal AVColorSpace's for the matrices it knows.
        let known: Set<AVColorSpace> = [AVCOL_SPC_BT709, AVCOL_SPC_FCC, AVCOL_SPC_BT470BG, AVCOL_SPC_SMPTE170M,
                                        AVCOL_SPC_SMPTE240M, AVCOL_SPC_BT2020_NCL, AVCOL_SPC_BT2020_CL]
        let matrix = known.contains(space) ? Int32(space.rawValue) : SWS_CS_DEFAULT
        if frame.pointee.color_range == AVCOL_RANGE_JPEG { sourceRange = 1 }
        sws_setColorspaceDetails(scaler, sws_getCoefficients(matrix), sourceRange, table, destinationRange,
                                 brightness, contrast, saturation)
    }
}
