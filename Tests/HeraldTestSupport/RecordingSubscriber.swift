// A Hub subscriber that records what it is told, for tests to assert on.
import Herald

/// Collects deliveries and gaps in arrival order. Confined to the test's loop.
public final class RecordingSubscriber: Subscriber {
    public private(set) var deliveries: [Delivery] = []
    public private(set) var gaps: [(kind: SubscriptionKind, name: String)] = []
    /// Called on each gap, e.g. to capture the link's state at that moment.
    public var onGap: ((SubscriptionKind, String) -> Void)?

    public init() {}

    public func deliver(_ delivery: Delivery) {
        deliveries.append(delivery)
    }

    public func gap(kind: SubscriptionKind, name: RedisName) {
        gaps.append((kind, name.text))
        onGap?(kind, name.text)
    }

    /// Payloads received so far, as text.
    public var payloads: [String] { deliveries.map { String(decoding: $0.payload, as: UTF8.self) } }
}
