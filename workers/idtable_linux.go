package workers

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of a transparent huge page on linux/amd64 and arm64
// (with 4 KiB base pages).
const hugePage = 2 << 20

// adviseHugePages asks the kernel to back the slots with huge pages, where
// transparent huge pages are enabled for memory that asks ("madvise", as
// Debian ships): a lookup lands on a random slot of a table of tens of
// megabytes, and with 4 KiB pages nearly every one missed the TLB as well
// as the caches, a miss that costs the most in a virtual machine. The
// advice covers the whole huge pages inside the slots only; it is only
// advice, and an error (a kernel without THP) changes nothing.
func adviseHugePages(slots []idSlot) {
	size := uintptr(len(slots)) * unsafe.Sizeof(idSlot{})
	if size < 2*hugePage {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(slots)))
	from := (start + hugePage - 1) &^ (hugePage - 1)
	to := (start + size) &^ (hugePage - 1)
	if to <= from {
		return
	}
	p := unsafe.Add(unsafe.Pointer(unsafe.SliceData(slots)), from-start)
	_ = unix.Madvise(unsafe.Slice((*byte)(p), to-from), unix.MADV_HUGEPAGE)
}
