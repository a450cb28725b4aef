package testkit

import (
	"strconv"
	"strings"
)

// UnknownKeys renders one valid iot_telemetry object followed by n distinct
// unknown keys: a body that decodes to many times its size if the
// collector keeps what it reads.
func UnknownKeys(n int) string {
	var b strings.Builder
	b.WriteString(`{"device_id":"d","ts":1,"metrics":{"t":1}`)
	for i := range n {
		b.WriteString(`,"`)
		b.WriteString(strconv.FormatInt(int64(i), 36))
		b.WriteString(`":0`)
	}
	b.WriteString("}")
	return b.String()
}

// HostileBody is a request body for the iot_telemetry stream built to cost
// the collector as much as possible, and what its answer must say.
type HostileBody struct {
	Name string
	Body []byte
	// Field is what the first error of a 400 answer must contain: the
	// field at fault and the problem.
	Field string
}

// hostileHead is a valid event's fields, so that only the hostile part is
// at fault.
const hostileHead = `{"device_id":"d","ts":1,"metrics":{"t":1}`

// HostileBodies returns the kinds of hostile body, each close to size bytes
// (at most size): 700,000 unknown keys, `[{},{},...]`, deep nesting, 1 MB
// numbers, invalid UTF-8, duplicate keys. size is meant to be the
// collector's --max-body-bytes (8 MiB by default), so that every body is
// read whole rather than refused by its length.
func HostileBodies(size int) []HostileBody {
	mb := strings.Repeat("7", 1<<20)
	nested := hostileHead + `,"x":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + "}"
	return []HostileBody{
		{Name: "700,000 unknown keys", Body: []byte(UnknownKeys(700_000)), Field: "unknown field"},
		{Name: "empty objects", Body: arrayOf("{}", size), Field: "device_id: required"},
		{Name: "nesting 10,000 deep", Body: arrayOf(nested, size), Field: "x: unknown field"},
		{Name: "1 MB numbers", Body: arrayOf(`{"device_id":"d","ts":1,"metrics":{"t":`+mb+"}}", size), Field: "metrics: t: number"},
		{Name: "invalid UTF-8", Body: arrayOf("{\"device_id\":\"\xc3"+strings.Repeat("u", 100)+"\",\"ts\":1,\"metrics\":{\"t\":1}}", size),
			Field: "device_id: invalid UTF-8"},
		{Name: "duplicate keys", Body: arrayOf(hostileHead+`,"device_id":"`+strings.Repeat("e", 100)+`"}`, size),
			Field: "device_id: duplicate key"},
	}
}

// arrayOf renders a JSON array of as many copies of elem as fit in size
// bytes (at least one).
func arrayOf(elem string, size int) []byte {
	n := max(1, (size-2)/(len(elem)+1))
	b := make([]byte, 0, 2+n*(len(elem)+1))
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, elem...)
	}
	return append(b, ']')
}
