import XCTest
import CInt8

final class Int8KernelTests: XCTestCase {
    func testKernelNames() {
        XCTAssertEqual(String(cString: probe_int8_kernel_name(Int32(PROBE_INT8_SCALAR))), "scalar")
        XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
        XCTAssertEqual(probe_int8_kernel(), Int32(PROBE_INT8_SCALAR))
        XCTAssertEqual(probe_int8_use_kernel(probe_int8_best_kernel()), 0)
    }
}
