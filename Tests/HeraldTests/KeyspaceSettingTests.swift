// KeyspaceSetting: which notify-keyspace-events values let watches work, what Herald adds with
// --keyspace-events (never removing a class), and the message that names the setting.
@testable import Herald
import XCTest

final class KeyspaceSettingTests: XCTestCase {
    func testWhatIsMissing() {
        XCTAssertEqual(String(KeyspaceSetting.missing(from: "")), "Kg$lshzxet")
        XCTAssertEqual(String(KeyspaceSetting.missing(from: "KA")), "")
        XCTAssertEqual(String(KeyspaceSetting.missing(from: "AK")), "", "Redis writes the classes in its own order")
        XCTAssertEqual(String(KeyspaceSetting.missing(from: "EA")), "K", "keyevent channels are not keyspace channels")
        XCTAssertEqual(String(KeyspaceSetting.missing(from: "Kg$lshzxet")), "")
        XCTAssertEqual(String(KeyspaceSetting.missing(from: "Kx")), "g$lshzet")
    }

    func testMergedKeepsWhatWasOn() {
        XCTAssertEqual(KeyspaceSetting.merged("Ex"), "ExKg$lshzet")
        XCTAssertEqual(KeyspaceSetting.merged("KA"), "KA")
        XCTAssertTrue(KeyspaceSetting.missing(from: KeyspaceSetting.merged("Em")).isEmpty)
    }

    func testAdviceKeepsWhatIsOn() {
        XCTAssertEqual(KeyspaceSetting.advice(""), "KA")
        XCTAssertEqual(KeyspaceSetting.advice("Ex"), "ExKA")
        XCTAssertEqual(KeyspaceSetting.advice("Kx"), "KxA")
        XCTAssertEqual(KeyspaceSetting.advice("AE"), "AEK")
        XCTAssertEqual(KeyspaceSetting.advice("KA"), "KA")
    }

    func testMessageNamesTheSetting() {
        let message = KeyspaceSetting.unavailableMessage("", node: nil)
        XCTAssertTrue(message.contains("notify-keyspace-events to KA"), message)
        XCTAssertTrue(KeyspaceSetting.unavailableMessage("xE", node: nil).contains("CONFIG SET notify-keyspace-events xEKA"))
        XCTAssertTrue(message.contains("--keyspace-events"), message)
        XCTAssertTrue(KeyspaceSetting.unavailableMessage("Ex", node: "10.0.0.1:7000").contains("10.0.0.1:7000"))
    }
}
