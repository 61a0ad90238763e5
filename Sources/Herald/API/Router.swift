// Maps a request to its endpoint family. Paths are matched on their percent-encoded form, so
// an encoded slash can never split or join path segments.

/// Routes requests for one worker.
public struct Router {
    let statics: StaticFiles
    let echo: Bool

    init(config: Config) {
        statics = StaticFiles(root: config.publicDir)
        echo = config.echo
    }

    func route(_ request: HTTPRequest, _ responder: Responder) {
        let path = request.path
        let method = request.method
        let readMethods = ["GET", "HEAD"]

        func allow(_ methods: [String], _ handler: () -> Void) {
            if methods.contains(method) { handler() } else {
                responder.fail(.methodNotAllowed(method, allowed: methods))
            }
        }

        switch path {
        case "/publish":
            allow(["POST"]) { PublishAPI.publishJSON(request, responder) }
        case _ where path.hasPrefix("/publish/"):
            allow(["POST"]) { PublishAPI.publishPath(request, responder) }
        case _ where path.hasPrefix("/streams/"):
            if method == "POST" { StreamsAPI.append(request, responder) } else {
                allow(["GET", "HEAD", "POST"]) { StreamsAPI.range(request, responder) }
            }
        case _ where path.hasPrefix("/queues/"):
            if method == "POST" { QueuesAPI.push(request, responder) } else {
                allow(["GET", "POST"]) { QueuesAPI.pop(request, responder) }
            }
        case "/subscribe":
            allow(["GET"]) { SubscribeAPI.open(request, responder) }
        case "/echo" where echo:
            allow(["GET"]) { EchoAPI.open(request, responder) }
        case "/healthz":
            allow(readMethods) { OpsAPI.health(responder) }
        case "/readyz":
            allow(readMethods) { OpsAPI.ready(responder) }
        case "/metrics":
            allow(readMethods) { OpsAPI.metrics(responder) }
        default:
            allow(readMethods) { statics.serve(request, responder) }
        }
    }
}
