// Static files from the public folder (the demo page). A request can never leave the folder:
// encoded slashes and dot segments are refused, and the resolved real path must stay inside.
import Glibc

struct StaticFiles {
    /// Real path of the folder, or nil when it does not exist.
    let root: String?
    /// Files above this size are not served from memory, bytes.
    static let maxFileBytes = 16 << 20

    init(root: String) {
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        self.root = realpath(root, &resolved) != nil ? Self.string(resolved) : nil
    }

    func serve(_ request: HTTPRequest, _ responder: Responder) {
        let notFound = HTTPError.notFound("no such file or route: \(request.method) \(request.path)")
        let raw = request.path.lowercased()
        // An encoded slash, backslash or NUL has no business in a file path.
        guard let root, !raw.contains("%2f"), !raw.contains("%5c"), !raw.contains("%00"),
            let decoded = PercentDecoding.decode(request.path), UTF8Validation.isValid(decoded)
        else {
            responder.fail(notFound)
            return
        }
        let path = String(decoding: decoded, as: UTF8.self)
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !segments.contains(where: { $0 == ".." || $0 == "." || $0.contains("\\") }) else {
            responder.fail(notFound)
            return
        }
        var relative = segments.joined(separator: "/")
        if relative.isEmpty || path.hasSuffix("/") { relative += (relative.isEmpty ? "" : "/") + "index.html" }
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard realpath(root + "/" + relative, &resolved) != nil else {
            responder.fail(notFound)
            return
        }
        let full = Self.string(resolved)
        var info = stat()
        guard full.hasPrefix(root + "/"), stat(full, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
            Int(info.st_size) <= Self.maxFileBytes
        else {
            responder.fail(notFound)
            return
        }
        let etag = "\"\(String(info.st_size, radix: 16))-\(String(info.st_mtim.tv_sec, radix: 16))\""
        let lastModified = Self.httpDate(info.st_mtim.tv_sec)
        var headers = [("ETag", etag), ("Last-Modified", lastModified), ("Cache-Control", "no-cache")]
        let notModified: Bool
        if let match = request.header("if-none-match") {
            notModified = match.split(separator: ",").contains { $0.trimmingCharacters(in: " ") == etag || $0.trimmingCharacters(in: " ") == "*" }
        } else {
            notModified = request.header("if-modified-since") == lastModified
        }
        if notModified {
            responder.respond(HTTPResponse(status: 304, headers: headers))
            return
        }
        guard let body = Self.read(full) else {
            responder.fail(notFound)
            return
        }
        headers.insert(("Content-Type", Self.contentType(full)), at: 0)
        headers.append(("X-Content-Type-Options", "nosniff"))
        responder.respond(HTTPResponse(status: 200, headers: headers, body: body))
    }

    /// A NUL-terminated C buffer as a String.
    static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count { break }
        }
        return ferror(file) == 0 ? bytes : nil
    }

    static func contentType(_ path: String) -> String {
        let ext = path.split(separator: ".").last.map { $0.lowercased() } ?? ""
        switch ext {
        case "html", "htm": return "text/html; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "json": return "application/json"
        case "yaml", "yml": return "application/yaml"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "jpg", "jpeg": return "image/jpeg"
        case "ico": return "image/x-icon"
        case "txt", "md": return "text/plain; charset=utf-8"
        case "wasm": return "application/wasm"
        default: return "application/octet-stream"
        }
    }

    /// IMF-fixdate (RFC 9110 §5.6.7).
    static func httpDate(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
