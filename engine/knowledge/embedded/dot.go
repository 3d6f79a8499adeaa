package embedded

import "math"

// dot is the inner product of two vectors of equal length; the vectors are
// L2-normalised, so it is their cosine similarity. It uses AVX2 and FMA where
// the CPU has them (dot_amd64.s) and dotGeneric elsewhere.
func dot(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	b = b[:len(a)]
	return dotImpl(a, b)
}

// dotGeneric is the portable kernel: four independent accumulators keep the
// floating-point pipelines busy (about one multiply-add per cycle).
func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dotCodes is the inner product of a float32 query with an int8-quantised
// vector's codes (not yet multiplied by its scale). Only used when
// dotCodesImpl is set: in portable Go it would be slower than dot.
func dotCodes(q []float32, c []int8) float32 {
	c = c[:len(q)]
	n := len(q) &^ 15
	var s float32
	if n > 0 && dotCodesImpl != nil {
		s = dotCodesImpl(q[:n], c[:n])
	} else {
		n = 0
	}
	for i := n; i < len(q); i++ {
		s += q[i] * float32(c[i])
	}
	return s
}

// dotCodesGeneric is the reference for dotCodes' kernels.
func dotCodesGeneric(q []float32, c []int8) float32 {
	var s float32
	for i, x := range q {
		s += x * float32(c[i])
	}
	return s
}

// quantize writes v's int8 codes to dst and returns their scale: v[i] ≈
// scale·dst[i], with |v[i] − scale·dst[i]| ≤ scale/2.
func quantize(dst []int8, v []float32) float32 {
	var m float32
	for _, x := range v {
		m = max(m, float32(math.Abs(float64(x))))
	}
	if m == 0 || math.IsInf(float64(m), 0) || math.IsNaN(float64(m)) {
		clear(dst)
		return 0
	}
	scale := m / 127
	for i, x := range v {
		dst[i] = int8(max(-127, min(127, math.Round(float64(x/scale)))))
	}
	return scale
}
