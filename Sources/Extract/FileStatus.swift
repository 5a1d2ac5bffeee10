import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Size and modification time of a file, from one stat(2) call.
struct FileStatus: Equatable, Sendable {
    let size: Int
    let mtimeNS: Int64

    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        size = Int(st.st_size)
        #if canImport(Darwin)
        mtimeNS = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
        #else
        mtimeNS = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        #endif
    }
}

/// The absolute, standardized form of a path: how samples are recorded in the store.
func absolutePath(_ p: String) -> String {
    URL(fileURLWithPath: p).standardizedFileURL.path
}
