// One request's (or one connection's) way past the backend's hook: who is asking, and the
// questions it asks before a connect, a subscription or a write goes ahead. Without a hook, or
// for an event the hook does not take, the answer is given at once and costs nothing.

/// Who the backend said the client is (a connect answer's `user` and `info`).
struct HookIdentity: Equatable {
    let user: String?
    let info: JSONValue?
}

/// Asks the backend on behalf of one caller; confined to the loop.
struct HookGate {
    let hooks: Hooks?
    let caller: HookCaller

    /// A gate that asks nothing (no hook configured).
    static func open(_ caller: HookCaller) -> HookGate { HookGate(hooks: nil, caller: caller) }

    /// Whether `event` is asked about at all.
    func asks(_ event: HookEvents) -> Bool { hooks?.asks(event) ?? false }

    /// Asks about each of `names` for `event`, at most `questionsInFlight` at a time; `done`
    /// gets nil when every one is allowed, else the refusal (`forbidden`, and nothing more is
    /// asked after one) or, when some answer is missing and none refused, `hook_unavailable`.
    /// Runs `done` at once when the hook does not take `event`.
    func check(_ event: HookEvents, kind: String, names: [RedisName], verb: String, _ done: @escaping (HTTPError?) -> Void) {
        guard let hooks, hooks.asks(event), !names.isEmpty else {
            done(nil)
            return
        }
        var asked = 0
        var answered = 0
        var refused: RedisName?
        var missing: String?
        func askNext() {
            let name = names[asked]
            asked += 1
            hooks.ask(event, kind: kind, name: name.text, caller: caller) { verdict in
                switch verdict {
                case .allowed: break
                case .refused: if refused == nil { refused = name }
                case .unavailable(let reason): if missing == nil { missing = reason }
                }
                answered += 1
                if refused == nil && asked < names.count {
                    askNext()
                    return
                }
                guard answered == asked else { return }
                if let refused {
                    done(.refusedByHook("\(verb) \(refused)"))
                } else if let missing {
                    done(.hookUnavailable(missing))
                } else {
                    done(nil)
                }
            }
        }
        while asked < min(names.count, Self.questionsInFlight) && refused == nil { askNext() }
    }

    /// Questions one check has at the hook at once: a subscribe of a thousand names neither
    /// waits for them one by one nor puts a thousand in the loop's queue at once.
    static let questionsInFlight = 16

    /// `check` for several kinds of names, one kind after another; stops at the first refusal.
    func check(_ event: HookEvents, _ groups: ArraySlice<(kind: String, names: [RedisName])>, verb: String, _ done: @escaping (HTTPError?) -> Void) {
        guard let first = groups.first else {
            done(nil)
            return
        }
        check(event, kind: first.kind, names: first.names, verb: verb) { error in
            if let error { done(error) } else { self.check(event, groups.dropFirst(), verb: verb, done) }
        }
    }

    /// Asks whether the connection may open (`kind`: `websocket` or `sse`); on success `done`
    /// gets the identity the backend named, if any.
    func connect(kind: String, _ done: @escaping (Result<HookIdentity?, HTTPError>) -> Void) {
        guard let hooks, hooks.asks(.connect) else {
            done(.success(nil))
            return
        }
        hooks.ask(.connect, kind: kind, name: nil, caller: caller) { verdict in
            switch verdict {
            case .allowed(let user, let info):
                done(.success(user == nil && info == nil ? nil : HookIdentity(user: user, info: info)))
            case .refused:
                done(.failure(.refusedByHook("this connection")))
            case .unavailable(let reason):
                done(.failure(.hookUnavailable(reason)))
            }
        }
    }
}
