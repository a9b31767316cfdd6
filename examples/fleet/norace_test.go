//go:build !race

package main

// quietSpell is the test's: the library's default (see race_test.go).
const quietSpell = 0
