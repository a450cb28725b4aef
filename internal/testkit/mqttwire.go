package testkit

// MQTTRemainingLength encodes n as an MQTT fixed header's remaining
// length: seven bits a byte, least significant first, the high bit set on
// every byte but the last. Tests build raw packets with it.
func MQTTRemainingLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}
