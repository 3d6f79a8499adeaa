//go:build !unix

package spec

// openNonBlocking is zero where FIFOs cannot be opened by path.
const openNonBlocking = 0
