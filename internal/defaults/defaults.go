// Package defaults fills in a configuration's unset fields: one call per
// field, in place of an if block each.
package defaults

// Set sets *v to d when *v is its type's zero value, and leaves it
// otherwise: for the fields whose zero means "the default".
func Set[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Positive sets *v to d when *v is zero or negative: for counts and
// durations where a negative value means nothing else.
func Positive[T ~int | ~int64 | ~float64](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
