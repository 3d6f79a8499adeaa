//go:build unix

package spec

import "syscall"

// openNonBlocking keeps the open of a FIFO from waiting for a writer; it
// changes nothing for regular files.
const openNonBlocking = syscall.O_NONBLOCK
