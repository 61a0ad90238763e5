// The opening handshake (RFC 6455 §4.2): validates the client's upgrade request and builds the
// 101 answer with Sec-WebSocket-Accept = base64(SHA-1(key + GUID)).
import Crypto
import FoundationEssentials

public enum WebSocketHandshake {
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// Whether the request asks for a WebSocket upgrade at all.
    private static let upgradeToken = Array("upgrade".utf8)

    public static func isUpgrade(_ request: HTTPRequest) -> Bool {
        request.header("upgrade")?.lowercased() == "websocket"
    }

    /// The 101 response for a valid upgrade request, with the permessage-deflate offer it can
    /// agree to; throws 400/426 otherwise.
    public static func accept(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        guard request.method == "GET" else { throw .badRequest("a WebSocket upgrade must use GET") }
        guard request.minorVersion == 1 else { throw .badRequest("a WebSocket upgrade needs HTTP/1.1") }
        guard request.connectionHas(Self.upgradeToken) else {
            throw .badRequest("a WebSocket upgrade needs `Connection: Upgrade`")
        }
        guard isUpgrade(request) else { throw .badRequest("a WebSocket upgrade needs `Upgrade: websocket`") }
        guard request.header("sec-websocket-version") == "13" else {
            throw .upgradeRequired("only WebSocket version 13 is supported")
        }
        guard let key = request.header("sec-websocket-key"),
            let decoded = Data(base64Encoded: key), decoded.count == 16
        else {
            throw .badRequest("missing or malformed Sec-WebSocket-Key")
        }
        var response = HTTPResponse(
            status: 101,
            headers: [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", acceptValue(for: key)),
            ])
        response.deflateOffer = deflateOffer(request)
        return response
    }

    /// The first permessage-deflate offer Herald can accept (RFC 7692 §5), from every
    /// Sec-WebSocket-Extensions field of the request.
    static func deflateOffer(_ request: HTTPRequest) -> DeflateParameters? {
        guard request.header(extensionsHeader) != nil else { return nil }
        return DeflateParameters.negotiate(request.headers.filter { $0.name == extensionsHeader }.map(\.value))
    }

    private static let extensionsHeader = "sec-websocket-extensions"

    public static func acceptValue(for key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Array((key + guid).utf8))
        return Data(digest).base64EncodedString()
    }
}
