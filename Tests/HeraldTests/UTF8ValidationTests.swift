import XCTest
@testable import Herald

final class UTF8ValidationTests: XCTestCase {
    func testASCIIIsValid() {
        XCTAssertTrue(UTF8Validation.isValid(Array("hello".utf8)))
    }
}
