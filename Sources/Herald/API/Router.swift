// Maps a request to its endpoint family, after the checks every request gets: the connection
// limit, CORS, and (for the broker endpoints) the credential. Paths are matched on their
// percent-encoded form, so an encoded slash can never split or join path segments.

/// Routes the requests of one loop's connections to their handlers, with that loop's services.
public struct Router {
    let statics: StaticFiles
    let echo: Bool
    let access: AccessPolicy
    let services: LoopServices

    // Method lists built once (an array literal allocates on every request).
    private static let readMethods = ["GET", "HEAD"]
    private static let post = ["POST"]
    private static let get = ["GET"]
    private static let streamMethods = ["GET", "HEAD", "POST"]
    private static let queueMethods = ["GET", "POST"]

    public init(config: Config, services: LoopServices) {
        statics = StaticFiles(root: config.publicDir)
        echo = config.echo
        access = config.access
        self.services = services
    }

    func route(_ request: HTTPRequest, _ responder: Responder) {
        let path = request.path
        let method = request.method

        if responder.connection.overLimit {
            rejectOverLimit(request, responder)
            return
        }
        if method == "OPTIONS" {
            preflight(request, responder)
            return
        }

        func allow(_ methods: [String], _ handler: () -> Void) {
            if methods.contains(method) {
                handler()
            } else {
                responder.fail(.methodNotAllowed(method, allowed: methods))
            }
        }

        /// Runs `handler` with the request's grant and decoded query, or answers 403/400/401.
        /// A page of an origin not allowed is refused before anything runs: CORS would only
        /// hide the answer from it, while a simple POST or GET still publishes or pops.
        func authorized(_ handler: (Caller) -> Void) {
            guard access.allowsOrigin(of: request) else {
                responder.fail(.originNotAllowed)
                return
            }
            guard let query = PercentDecoding.query(request.query) else {
                responder.fail(.badRequest("the query string is badly encoded"))
                return
            }
            do {
                var caller = Caller(grant: try access.grant(for: request, query: query), query: query)
                caller.idempotencyTtlMs = services.idempotencyTtlMs
                if let hooks = services.hooks {
                    let asking = HookCaller(
                        client: nil, connection: ObjectIdentifier(responder.connection), remote: responder.connection.remoteAddress, request: request)
                    caller.gate = HookGate(hooks: hooks, caller: asking)
                }
                handler(caller)
            } catch {
                responder.fail(error)
            }
        }

        switch path {
        case "/publish":
            allow(Self.post) { authorized { PublishAPI.publishJSON(request, responder, $0, services.publisher) } }
        case _ where path.utf8.starts(with: "/publish/".utf8):
            allow(Self.post) { authorized { PublishAPI.publishPath(request, responder, $0, services.publisher) } }
        case _ where path.utf8.starts(with: "/streams/".utf8):
            allow(Self.streamMethods) {
                authorized { caller in
                    if method == "POST" {
                        StreamsAPI.append(request, responder, caller, services.redis, services.queues.blocking)
                    } else {
                        StreamsAPI.range(request, responder, caller, services.redis)
                    }
                }
            }
        case _ where path.utf8.starts(with: "/queues/".utf8):
            allow(Self.queueMethods) {
                authorized { caller in
                    if method == "POST" {
                        QueuesAPI.push(request, responder, caller, services.queues)
                    } else if AccessPolicy.isNoCORSCrossOrigin(request) {
                        responder.fail(.noCORSPop)
                    } else {
                        QueuesAPI.pop(request, responder, caller, services.queues)
                    }
                }
            }
        case _ where path.utf8.starts(with: "/presence/".utf8):
            allow(Self.readMethods) { authorized { PresenceAPI.read(request, responder, $0, services.presence) } }
        case "/subscribe":
            allow(Self.get) { SubscribeAPI.open(request, responder, access: access, services: services) }
        case "/events":
            allow(Self.get) { SubscribeAPI.open(request, responder, access: access, services: services, eventStream: true) }
        case "/echo" where echo:
            allow(Self.get) { EchoAPI.open(request, responder) }
        case "/healthz":
            allow(Self.readMethods) { OpsAPI.health(responder) }
        case "/readyz":
            allow(Self.readMethods) { OpsAPI.ready(responder, services.process) }
        case "/metrics":
            allow(Self.readMethods) { OpsAPI.metrics(responder, services.process) }
        default:
            allow(Self.readMethods) { statics.serve(request, responder) }
        }
    }

    /// Beyond `--max-connections`: WebSockets are accepted and closed with 1013 (try again
    /// later), so browsers see why; everything else gets 503.
    private func rejectOverLimit(_ request: HTTPRequest, _ responder: Responder) {
        let error = HTTPError.tooManyConnections(limit: services.maxConnections)
        if request.path == "/subscribe", let accepted = try? WebSocketHandshake.accept(request) {
            let refusal = RefusedSession(
                connection: responder.connection, code: CloseCode.tryAgainLater,
                error: Envelope.error(code: error.code, message: error.message))
            if responder.upgrade(accepted, to: refusal) {
                refusal.start()
                return
            }
        }
        responder.fail(error)
    }

    /// CORS preflight (Fetch standard): which origins, methods and headers may call Herald.
    private func preflight(_ request: HTTPRequest, _ responder: Responder) {
        guard request.header("origin") != nil, access.allowsOrigin(of: request) else {
            responder.fail(.originNotAllowed)
            return
        }
        responder.respond(
            HTTPResponse(
                status: 204,
                headers: [
                    ("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS"),
                    ("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, Idempotency-Key"),
                    ("Access-Control-Max-Age", "600"),
                ]))
    }
}
