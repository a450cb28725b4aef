package mqtt

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

// fixedHeader is the fixed header of an MQTT packet of the given type
// byte with n bytes after it.
func fixedHeader(typ byte, n int) []byte {
	return append([]byte{typ}, testkit.MQTTRemainingLength(n)...)
}

// stream is the packets' bytes: small and large ones mixed, payloads
// filled with their index so that a byte out of place shows.
func stream(sizes []int) []byte {
	var out []byte
	for i, n := range sizes {
		out = append(out, fixedHeader(0x30, n)...)
		out = append(out, bytes.Repeat([]byte{byte(i)}, n)...)
	}
	return out
}

// Reads hand on every byte in order, however the socket splits them, and
// hold the budget exactly while a large packet is being read: from the
// read that completes its fixed header until the read after its last
// byte, which never hands on bytes of the next packet.
func TestBudgetedReadsFollowPackets(t *testing.T) {
	sizes := []int{0, 10, smallPacketBytes, smallPacketBytes + 1, 5, 200 << 10, 200 << 10, 127, 128, 16383, 16384, 2 << 20}
	want := stream(sizes)
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		server, client := net.Pipe()
		wrng := rand.New(rand.NewPCG(seed, 2)) // the writer's own
		go func() {
			for rest := want; len(rest) > 0; {
				n := min(len(rest), 1+wrng.IntN(70_000))
				if _, err := client.Write(rest[:n]); err != nil {
					return
				}
				rest = rest[n:]
			}
			client.Close()
		}()
		b := newReadBudget(1<<30, 4<<20)
		r := newBudgetedReads(b)
		var got []byte
		buf := make([]byte, 1+rng.IntN(9000))
		for {
			n, err := r.read(server, buf)
			got = append(got, buf[:n]...)
			if r.held > 0 && r.scan.left == 0 && len(r.pending) == 0 && err == nil {
				// The packet is whole: the next read gives the budget
				// back before it hands on anything.
				if held := r.held; held != 2*int64(sizes[lastPacket(got, sizes)]) {
					t.Fatalf("seed %d: %d bytes held for a packet of %d", seed, held, sizes[lastPacket(got, sizes)])
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		r.done()
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d: %d bytes read, want %d, or out of order", seed, len(got), len(want))
		}
		if !b.bytes.TryAcquire(1 << 30) {
			t.Fatalf("seed %d: the budget was not all given back", seed)
		}
	}
}

// lastPacket is the index of the packet whose bytes end got.
func lastPacket(got []byte, sizes []int) int {
	off := 0
	for i, n := range sizes {
		off += len(fixedHeader(0x30, n)) + n
		if off >= len(got) {
			return i
		}
	}
	return len(sizes) - 1
}

// A connection waits for the budget another holds, and stops waiting at
// its read deadline, with the error the socket's read would have given.
func TestBudgetedReadsWaitUntilTheDeadline(t *testing.T) {
	b := newReadBudget(1<<20, 1<<20)
	first, second := newBudgetedReads(b), newBudgetedReads(b)
	big := fixedHeader(0x30, 400<<10)
	if _, err := first.account(big); err != nil || first.held != 800<<10 {
		t.Fatalf("first connection: held %d, err %v", first.held, err)
	}
	second.setDeadline(time.Now().Add(100 * time.Millisecond))
	start := time.Now()
	if _, err := second.account(big); err == nil || !errorsIsTimeout(err) {
		t.Fatalf("second connection: err %v, want a deadline exceeded", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("gave up after %s, before its deadline", d)
	}
	first.done()
	second.setDeadline(time.Time{})
	if _, err := second.account(big); err != nil || second.held != 800<<10 {
		t.Fatalf("second connection after the first closed: held %d, err %v", second.held, err)
	}
}

func errorsIsTimeout(err error) bool {
	ne, ok := err.(interface{ Timeout() bool })
	return ok && ne.Timeout()
}
