// QueueKeys: every queue name gets keys of its own (no two names share a registry or a
// processing list), each in the queue's hash slot, over adversarial names made of the bytes
// that matter (`{`, `}`, `:`, digits) and hand-picked pairs that once collided.
import Herald
import XCTest

final class QueueKeysTests: XCTestCase {
    private func slot(_ key: RedisName) -> Int { SlotHash.slot(key.bytes) }

    /// A small deterministic generator (xorshift64*), so a failure names a reproducible name.
    private struct Random {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return Int((state &* 2_685_821_657_736_338_717) >> 33) % bound
        }
    }

    /// Names from an alphabet heavy in the bytes that hash tags and key parts are made of.
    private func adversarialNames(count: Int) -> [String] {
        let alphabet = Array("{}{}::0123456789ajeu}{é")
        var random = Random(state: 0x9E37_79B9_7F4A_7C15)
        var names = Set<String>()
        while names.count < count {
            let length = 1 + random.next(12)
            names.insert(String((0..<length).map { _ in alphabet[random.next(alphabet.count)] }))
        }
        return names.sorted()
    }

    /// Pairs the old `{tag}:name` / `{name}` forms gave the same keys, and near relatives.
    private let collidingPairs: [(String, String)] = [
        ("jobs{eu}", "eu}:jobs{eu"),
        ("a{b}", "b}:a{b"),
        ("x", "{x}"),
        ("x}", "{x}}"),
        ("1:a", "a"),
        ("{a}:1", "{a}"),
        ("a{}", "{}}a"),
    ]

    private func assertInjective(_ names: [String], file: StaticString = #filePath, line: UInt = #line) {
        var owners: [RedisName: String] = [:]
        for name in names {
            for key in [QueueKeys.registry(RedisName(name)), QueueKeys.processingList(RedisName(name), id: "w1")] {
                if let other = owners[key], other != name {
                    XCTFail("'\(name)' and '\(other)' share the key \(key)", file: file, line: line)
                }
                owners[key] = name
            }
        }
    }

    func testNoTwoNamesShareAKey() {
        let names = adversarialNames(count: 20_000)
        assertInjective(names + collidingPairs.flatMap { [$0.0, $0.1] })
    }

    func testTheNamesThatOnceCollidedNoLongerDo() {
        for (a, b) in collidingPairs {
            XCTAssertNotEqual(QueueKeys.registry(RedisName(a)), QueueKeys.registry(RedisName(b)), "\(a) / \(b)")
            XCTAssertNotEqual(QueueKeys.processingList(RedisName(a), id: "w"), QueueKeys.processingList(RedisName(b), id: "w"), "\(a) / \(b)")
        }
    }

    func testEveryKeyIsInItsQueuesSlot() {
        for name in adversarialNames(count: 5_000) + collidingPairs.flatMap({ [$0.0, $0.1] }) + ["caf\u{00E9}{\u{00E9}}", "a}b", "}"] {
            XCTAssertEqual(slot(QueueKeys.registry(RedisName(name))), slot(RedisName(name)), name)
            XCTAssertEqual(slot(QueueKeys.processingList(RedisName(name), id: "3f1c")), slot(RedisName(name)), name)
        }
    }

    func testDocumentedForms() {
        XCTAssertEqual(QueueKeys.registry("jobs"), "herald:consumers:{jobs}:4:jobs")
        XCTAssertEqual(QueueKeys.processingList("jobs", id: "w1"), "herald:processing:{jobs}:4:jobs:w1")
        XCTAssertEqual(QueueKeys.registry("jobs{eu}"), "herald:consumers:{eu}:8:jobs{eu}")
        XCTAssertEqual(QueueKeys.processingList("caf\u{00E9}", id: "w1"), "herald:processing:{caf\u{00E9}}:5:caf\u{00E9}:w1", "length in bytes")
        // A name no tag can hold: the first base-36 string in its slot (7866), worked out
        // independently; every Herald must agree on it.
        XCTAssertEqual(QueueKeys.registry("a}b"), "herald:consumers:{4w2}:3:a}b")
        XCTAssertNotEqual(QueueKeys.registry("a{t}1"), QueueKeys.registry("a{t}2"), "queues sharing a tag keep apart")
        for name in ["jobs", "a}b", "{x}"] {
            XCTAssertTrue(InternalKeys.isReserved(QueueKeys.registry(RedisName(name))), name)
            XCTAssertTrue(InternalKeys.isReserved(QueueKeys.processingList(RedisName(name), id: "w")), name)
        }
    }

    func testReservedNamesAreThoseInHeraldsSpace() {
        XCTAssertTrue(InternalKeys.isReserved("herald:"))
        XCTAssertTrue(InternalKeys.isReserved("herald:consumers:{jobs}"))
        XCTAssertFalse(InternalKeys.isReserved("herald"))
        XCTAssertFalse(InternalKeys.isReserved("Herald:jobs"), "keys are compared by bytes")
        XCTAssertFalse(InternalKeys.isReserved("jobs:herald:"))
    }
}
