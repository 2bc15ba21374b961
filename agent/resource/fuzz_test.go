package resource

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzDecodeARP: any frame read off the wire decodes without panicking,
// and a frame that decodes re-encodes to the same ARP header fields.
func FuzzDecodeARP(f *testing.F) {
	mac := []byte{2, 0, 0, 0, 0, 1}
	vip := netip.MustParseAddr("198.51.100.10")
	f.Add(ARPProbe(mac, vip))
	f.Add(GratuitousARP(mac, vip, arpReply))
	f.Add([]byte{})
	f.Add(make([]byte, 42))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeARP(b)
		if err != nil {
			return
		}
		if len(b) < 42 || !bytes.Equal(p.SenderMAC, b[22:28]) || p.SenderIP.As4() != [4]byte(b[28:32]) || p.TargetIP.As4() != [4]byte(b[38:42]) {
			t.Fatalf("decoded %+v from % x", p, b)
		}
		_ = p.claims(vip, mac)
	})
}
