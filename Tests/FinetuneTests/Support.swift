import Foundation
import TestSupport

let referenceDirectory = sharedDirectory + "/reference"
let sharedAvailable = FileManager.default.fileExists(atPath: referenceDirectory + "/finetune_two_steps/steps.json")

func l2(_ a: [Float]) -> Double { a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }

/// ||a - b|| / ||b||
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0
    for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); num += d * d; den += Double(b[i]) * Double(b[i]) }
    return (num / max(den, 1e-300)).squareRoot()
}

