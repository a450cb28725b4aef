//go:build !linux

package workers

// adviseHugePages does nothing where huge pages are not asked for.
func adviseHugePages([]idSlot) {}
