package workers

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// TestAdviseHugePages checks that a large table's memory is marked for huge
// pages (VmFlags "hg" in /proc/self/smaps) from its first whole huge page
// on, and that a small one is left alone.
func TestAdviseHugePages(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("the kernel has no transparent huge pages")
	}
	small := make([]idSlot, 1024)
	adviseHugePages(small)
	if flags := vmFlags(t, uintptr(unsafe.Pointer(&small[0]))); strings.Contains(flags, " hg") {
		t.Errorf("a 24 KiB table was advised: %s", flags)
	}
	slots := make([]idSlot, 8<<20/unsafe.Sizeof(idSlot{}))
	adviseHugePages(slots)
	start := uintptr(unsafe.Pointer(&slots[0]))
	first := (start + hugePage - 1) &^ (hugePage - 1)
	if flags := vmFlags(t, first); !strings.Contains(flags, " hg") {
		t.Errorf("the table's memory is not advised for huge pages: VmFlags %s", flags)
	}
}

// vmFlags returns the VmFlags of the mapping of this process holding addr.
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 && strings.Contains(line[:strings.IndexByte(line, ' ')], "-") {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimPrefix(line, "VmFlags:")
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}
