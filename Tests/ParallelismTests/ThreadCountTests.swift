import Foundation
import Testing
@testable import Parallelism

@Test func cpuMaxQuota() {
    #expect(ThreadCount.quota(fromCPUMax: "max 100000") == nil)
    #expect(ThreadCount.quota(fromCPUMax: "150000 100000") == 2)
    #expect(ThreadCount.quota(fromCPUMax: "50000 100000") == 1)
    #expect(ThreadCount.quota(fromCPUMax: "200000 100000\n") == 2)
    #expect(ThreadCount.quota(fromCPUMax: "") == nil)
}

@Test func cpuListCount() {
    #expect(ThreadCount.cpuCount(fromList: "0-1") == 2)
    #expect(ThreadCount.cpuCount(fromList: "0-3,8,10-11") == 7)
    #expect(ThreadCount.cpuCount(fromList: "5\n") == 1)
    for garbage in ["", "abc", "-", "1-", "-1", "3-1", "0-1,", "0-1,,2", "0-1-2", "0,x"] {
        #expect(ThreadCount.cpuCount(fromList: garbage) == nil, "\(garbage)")
    }
}

/// A fake cgroup tree: files (path relative to the root -> contents) and /proc/self/cgroup's text.
private func withCgroupTree(_ files: [String: String], selfCgroup: String, _ body: (_ root: String, _ selfPath: String) -> Void) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("probe-cgroup-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let root = dir.appendingPathComponent("sys/fs/cgroup")
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    for (path, text) in files {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }
    let selfPath = dir.appendingPathComponent("cgroup").path
    try Data(selfCgroup.utf8).write(to: URL(fileURLWithPath: selfPath))
    body(root.path, selfPath)
}

#if os(Linux)
@Test func cgroupV2Quota() throws {
    // the process's cgroup has 1.5 CPUs, its parent no limit
    try withCgroupTree(["a/b/cpu.max": "150000 100000\n", "a/cpu.max": "max 100000\n"], selfCgroup: "0::/a/b\n") { root, me in
        #expect(ThreadCount.cgroupQuota(root: root, selfCgroup: me) == 2)
    }
    // the tightest ancestor wins
    try withCgroupTree(["a/b/cpu.max": "300000 100000\n", "a/cpu.max": "100000 100000\n", "cpu.max": "max 100000\n"],
                       selfCgroup: "0::/a/b\n") { root, me in
        #expect(ThreadCount.cgroupQuota(root: root, selfCgroup: me) == 1)
    }
    // no limit anywhere
    try withCgroupTree(["a/b/cpu.max": "max 100000\n", "a/cpu.max": "max 100000\n"], selfCgroup: "0::/a/b\n") { root, me in
        #expect(ThreadCount.cgroupQuota(root: root, selfCgroup: me) == nil)
    }
    // unknown cgroup file: the root's cpu.max
    try withCgroupTree(["cpu.max": "250000 100000"], selfCgroup: "") { root, me in
        #expect(ThreadCount.cgroupQuota(root: root, selfCgroup: me + ".missing") == 3)
    }
}

@Test func cgroupV1Quota() throws {
    let me = "12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n1:name=systemd:/docker/x\n"
    try withCgroupTree(["cpu,cpuacct/docker/x/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n"],
                       selfCgroup: me) { root, me in
        #expect(ThreadCount.cgroupQuota(root: root, selfCgroup: me) == 3)
    }
    try withCgroupTree(["cpu,cpuacct/docker/x/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n"],
                       selfCgroup: me) { root, me in
        #expect(ThreadCount.cgroupQuota(root: root, selfCgroup: me) == nil)
    }
    // the quota on the controller's root (a container sees its own cgroup as /)
    try withCgroupTree(["cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"],
                       selfCgroup: "3:cpu,cpuacct:/\n") { root, me in
        #expect(ThreadCount.cgroupQuota(root: root, selfCgroup: me) == 2)
    }
}
#endif

@Test func workersIsPositive() {
    #expect(ThreadCount.workers >= 1)
    #expect(ThreadCount.available >= 1)
    #expect(defaultWorkerCount == ThreadCount.workers)
}
