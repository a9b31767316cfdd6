//go:build !race

package cutovertest

const raceDetector = false
