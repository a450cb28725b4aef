package mqtt

import (
	"fmt"
	"strings"
)

// DefaultRoutes are the routes when none are configured: one per built-in
// stream, the device or service taken from the topic.
var DefaultRoutes = []string{
	"devices/{device_id}/telemetry=iot_telemetry",
	"services/{service}/logs=app_logs",
}

// Route sends the messages whose topic matches a filter to a stream. The
// filter is an MQTT topic filter in which a level may also be a
// placeholder, {field}: it matches one level, like +, and its value fills
// that field of every event of the message that does not set it.
type Route struct {
	// Filter is the filter as configured, placeholders included.
	Filter string
	// Stream receives the matching messages' events.
	Stream string
	levels []string // the filter split on '/'
}

// ParseRoute parses FILTER=STREAM, as given to --mqtt-route.
func ParseRoute(s string) (Route, error) {
	filter, stream, ok := strings.Cut(s, "=")
	filter, stream = strings.TrimSpace(filter), strings.TrimSpace(stream)
	if !ok || filter == "" || stream == "" {
		return Route{}, fmt.Errorf("route %q: want FILTER=STREAM, such as devices/{device_id}/telemetry=iot_telemetry", s)
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return Route{}, fmt.Errorf("route %q: # must be the last level", s)
		case strings.HasPrefix(l, "{") || strings.HasSuffix(l, "}"):
			if len(l) < 3 || !strings.HasPrefix(l, "{") || !strings.HasSuffix(l, "}") || strings.ContainsAny(l[1:len(l)-1], "{}+#") {
				return Route{}, fmt.Errorf("route %q: level %q: a placeholder is a whole level, {field}", s, l)
			}
		case l != "+" && l != "#" && strings.ContainsAny(l, "+#"):
			return Route{}, fmt.Errorf("route %q: level %q: + and # must be a whole level", s, l)
		}
	}
	return Route{Filter: filter, Stream: stream, levels: levels}, nil
}

// Subscription is the MQTT topic filter to subscribe to: the filter with
// each placeholder as +.
func (r Route) Subscription() string {
	out := make([]string, len(r.levels))
	for i, l := range r.levels {
		if field, ok := placeholder(l); ok && field != "" {
			l = "+"
		}
		out[i] = l
	}
	return strings.Join(out, "/")
}

// Fields returns the fields the route's placeholders fill.
func (r Route) Fields() []string {
	var out []string
	for _, l := range r.levels {
		if field, ok := placeholder(l); ok {
			out = append(out, field)
		}
	}
	return out
}

// Match reports whether topic matches the route and, if it does, the
// values of its placeholders (nil when it has none). It walks the topic
// without splitting it: it runs for every message and every route.
func (r Route) Match(topic string) (map[string]string, bool) {
	if strings.HasPrefix(topic, "$") && r.levels[0] != topic[:strings.IndexByte(topic+"/", '/')] {
		// Wildcards at the first level do not match $SYS and other
		// server topics (MQTT 5, 4.7.2).
		return nil, false
	}
	var fields map[string]string
	rest, more := topic, true
	for _, l := range r.levels {
		if l == "#" {
			return fields, true // also matches the parent level: a/# matches a
		}
		if !more {
			return nil, false
		}
		var level string
		level, rest, more = strings.Cut(rest, "/")
		switch field, ok := placeholder(l); {
		case ok:
			if fields == nil {
				fields = make(map[string]string, 2)
			}
			fields[field] = level
		case l == "+":
		case l != level:
			return nil, false
		}
	}
	return fields, !more
}

func placeholder(level string) (string, bool) {
	if len(level) >= 3 && level[0] == '{' && level[len(level)-1] == '}' {
		return level[1 : len(level)-1], true
	}
	return "", false
}

// Router picks the route of a topic: the first route that matches, in the
// order configured.
type Router []Route

// ParseRoutes parses every FILTER=STREAM; none gives DefaultRoutes.
func ParseRoutes(specs []string) (Router, error) {
	if len(specs) == 0 {
		specs = DefaultRoutes
	}
	rs := make(Router, 0, len(specs))
	for _, s := range specs {
		r, err := ParseRoute(s)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// Route returns the stream of topic and the fields its placeholders fill.
func (rs Router) Route(topic string) (stream string, fields map[string]string, ok bool) {
	for _, r := range rs {
		if f, ok := r.Match(topic); ok {
			return r.Stream, f, true
		}
	}
	return "", nil, false
}
