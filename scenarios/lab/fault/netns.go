package fault

import "github.com/redisha/redisha/components/netns"

// inNetns runs fn inside the network namespace at path ("" runs fn where it
// is). Sockets created by fn stay in that namespace for their whole life.
func inNetns(path string, fn func() error) error { return netns.Do(path, fn) }
