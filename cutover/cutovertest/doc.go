// Package cutovertest runs moves the way a host application would, on
// throwaway localpg instances: a Fleet (control database with catalog,
// routes and journal; tenant instances; a Router for the application) and
// a Workload that writes through the Router and counts every acknowledged
// write. Examples and tests use it; so can yours.
package cutovertest
