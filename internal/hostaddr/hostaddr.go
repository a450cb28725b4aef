// Package hostaddr answers questions about network addresses that several
// parts of Sluice ask alike.
package hostaddr

import "net"

// Local reports whether addr, host:port or a bare host, names this
// machine: "localhost" or a loopback IP. Names other than localhost are
// not resolved, so a name that happens to point here is not local.
//
// The ClickHouse sink skips compression for a local server, `sluice run`
// warns of a password sent in clear to a remote one, and `sluice bench`
// counts a local server's CPU: all by this one rule.
func Local(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
