import XCTest

@testable import Herald

final class FairQueueTests: XCTestCase {
    func testOwnersAreServedInTurnEachInArrivalOrder() {
        var queue = FairQueue<String, Int>()
        for i in 0..<1000 { queue.append(i, for: "flood") }
        queue.append(1, for: "a")
        queue.append(2, for: "a")
        queue.append(7, for: "b")
        XCTAssertEqual(queue.count, 1003)
        XCTAssertEqual(queue.count(of: "flood"), 1000)
        // The flood's first item, then each other owner's: not a thousand items later.
        XCTAssertEqual(queue.next(), 0)
        XCTAssertEqual(queue.next(), 1)
        XCTAssertEqual(queue.next(), 7)
        XCTAssertEqual(queue.next(), 1)
        XCTAssertEqual(queue.next(), 2)
        XCTAssertEqual(queue.next(), 2)
        XCTAssertEqual(queue.count(of: "a"), 0)
        XCTAssertEqual(queue.count(of: "b"), 0)
        var rest: [Int] = []
        while let item = queue.next() { rest.append(item) }
        XCTAssertEqual(rest, Array(3..<1000))
        XCTAssertTrue(queue.isEmpty)
        XCTAssertNil(queue.next())
    }

    func testAnOwnerThatComesBackWaitsForItsTurnAgain() {
        var queue = FairQueue<Int, String>()
        queue.append("x1", for: 1)
        XCTAssertEqual(queue.next(), "x1")
        queue.append("y1", for: 2)
        queue.append("x2", for: 1)
        queue.append("y2", for: 2)
        XCTAssertEqual([queue.next(), queue.next(), queue.next()], ["y1", "x2", "y2"])
        XCTAssertEqual(queue.count, 0)
    }

    func testEveryItemComesOutOnceUnderInterleaving() {
        var queue = FairQueue<Int, Int>()
        var expected: [Int: [Int]] = [:]
        var seen: [Int: [Int]] = [:]
        var generator = SystemRandomNumberGenerator()
        var serial = 0
        for _ in 0..<5_000 {
            if Int.random(in: 0..<3, using: &generator) > 0 {
                let owner = Int.random(in: 0..<17, using: &generator)
                queue.append(serial, for: owner)
                expected[owner, default: []].append(serial)
                serial += 1
            } else if let item = queue.next() {
                let owner = expected.first { $0.value.contains(item) }!.key
                seen[owner, default: []].append(item)
            }
        }
        while let item = queue.next() {
            let owner = expected.first { $0.value.contains(item) }!.key
            seen[owner, default: []].append(item)
        }
        XCTAssertEqual(seen, expected, "each owner's items, once each, in its order")
    }
}
