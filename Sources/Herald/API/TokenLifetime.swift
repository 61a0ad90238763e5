// The life of the token a WebSocket or event stream was opened (or last refreshed) with: a
// `token_expiring` warning shortly before its `exp`, then the end of the connection at `exp`.
// One timer at a time on the connection's loop, cancelled when the connection closes.
import FoundationEssentials

/// What a session needs to follow its token: the policy that verifies a `refresh` op's token,
/// how early to warn, and the loop its timers run on.
struct TokenServices {
    let access: AccessPolicy
    /// `--token-warning`, ms.
    let warningMs: Int64
    let loop: EventLoop
}

/// When a token's holder is warned; pure, so unit tests drive it.
enum TokenWarning {
    /// Ms before `exp` that the warning goes out, for a token with `remainingMs` left:
    /// `warningMs`, or half the remaining life if that is shorter (a token minted for a minute
    /// is warned at 30 s, not at once); 0 when no time is left to warn in.
    static func leadMs(remainingMs: Int64, warningMs: Int64) -> Int64 {
        max(0, min(warningMs, remainingMs / 2))
    }

    /// The `in` of a `token_expiring` notice: whole seconds from `now` to `expiresAt` (Unix
    /// seconds), rounded to the nearest, never negative.
    static func secondsLeft(expiresAt: Double, now: Double) -> Int {
        max(0, Int((expiresAt - now).rounded()))
    }
}

/// Follows one session's token `exp` on the session's loop: calls `warn` (with the seconds
/// left) once before it, then `expire` at it. Confined to that loop. Owned by its session, which
/// must call `stop()` when its connection closes: a pending timer holds the clock, and no timer
/// may outlive its connection.
final class TokenClock {
    private let services: TokenServices
    private let warn: (Int) -> Void
    private let expire: () -> Void
    /// The `exp` followed, Unix seconds; nil once stopped or for a token without one.
    private(set) var expiresAt: Double?
    /// The loop timer pending (the warning's, then the expiry's), if any.
    private var timer: Int?
    /// The warning for the current `expiresAt` went out.
    private var warned = false

    init(services: TokenServices, warn: @escaping (Int) -> Void, expire: @escaping () -> Void) {
        self.services = services
        self.warn = warn
        self.expire = expire
    }

    /// Follows `expiresAt` from now on (nil: nothing expires). The same `exp` again changes
    /// nothing, so a client that repeats a refresh costs no timer work.
    func follow(_ expiresAt: Double?) {
        guard expiresAt != self.expiresAt || (expiresAt != nil && timer == nil) else { return }
        stop()
        self.expiresAt = expiresAt
        warned = false
        arm()
    }

    /// Cancels the pending timer; nothing fires afterwards.
    func stop() {
        if let timer { services.loop.cancelTimer(timer) }
        timer = nil
        expiresAt = nil
    }

    private func arm() {
        guard let expiresAt else { return }
        let now = Date().timeIntervalSince1970
        let remainingMs = Int64(((expiresAt - now) * 1000).rounded(.up))
        let leadMs = TokenWarning.leadMs(remainingMs: remainingMs, warningMs: services.warningMs)
        if !warned && leadMs > 0 {
            timer = services.loop.schedule(afterMs: remainingMs - leadMs) {
                self.timer = nil
                self.warned = true
                self.warn(TokenWarning.secondsLeft(expiresAt: expiresAt, now: Date().timeIntervalSince1970))
                self.arm()
            }
        } else {
            timer = services.loop.schedule(afterMs: max(0, remainingMs)) {
                self.timer = nil
                self.expiresAt = nil
                self.expire()
            }
        }
    }
}
