//go:build !purego

package embedded

import "golang.org/x/sys/cpu"

var avx2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

var dotImpl = func() func(a, b []float32) float32 {
	if avx2 {
		return dotAVX2
	}
	return dotGeneric
}()

// dotCodesImpl is nil when there is no fast kernel: indexes then keep no int8
// codes and scan the float32 vectors only.
var dotCodesImpl = func() func(q []float32, c []int8) float32 {
	if avx2 {
		return dotCodesAVX2
	}
	return nil
}()

func dotAVX2(a, b []float32) float32 {
	return dotFMA(&a[0], &b[0], len(a))
}

// dotCodesAVX2 requires len(q) to be a positive multiple of 16.
func dotCodesAVX2(q []float32, c []int8) float32 {
	return dotI8FMA(&q[0], &c[0], len(q))
}

// dotFMA is the AVX2/FMA float32 kernel; n > 0.
//
//go:noescape
func dotFMA(a, b *float32, n int) float32

// dotI8FMA is the AVX2/FMA kernel of a float32 query with int8 codes; n is a
// positive multiple of 16.
//
//go:noescape
func dotI8FMA(q *float32, c *int8, n int) float32
