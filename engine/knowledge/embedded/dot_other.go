//go:build !amd64 || purego

package embedded

var (
	dotImpl      = dotGeneric
	dotCodesImpl func(q []float32, c []int8) float32
)
