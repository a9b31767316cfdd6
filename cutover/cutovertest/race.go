//go:build race

package cutovertest

// raceDetector: this binary runs under the race detector, which slows
// every goroutine several times over.
const raceDetector = true
