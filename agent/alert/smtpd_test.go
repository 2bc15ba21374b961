package alert

import (
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

// smtpServer is a real SMTP server on 127.0.0.1, small but strict enough
// to catch a client that skips a step: EHLO/HELO, STARTTLS, AUTH PLAIN,
// MAIL, RCPT, DATA (dot-stuffed), RSET, NOOP, QUIT.
type smtpServer struct {
	t    *testing.T
	ln   net.Listener
	Addr string

	// TLS, when set, offers STARTTLS.
	TLS *tls.Config
	// User and Pass, when set, require AUTH PLAIN (offered only after
	// STARTTLS when TLS is set).
	User, Pass string

	mu sync.Mutex
	// RcptReply refuses a recipient when it returns a reply line.
	RcptReply func(to string) string
	// DataReply refuses the n-th message (from 1) at the end of DATA when
	// it returns a reply line.
	DataReply func(n int) string
	datas     int
	msgs      []smtpMessage
	conns     map[net.Conn]bool
	wg        sync.WaitGroup
}

// smtpMessage is one accepted message.
type smtpMessage struct {
	From     string
	To       []string
	Data     []byte // as read by ReadDotBytes: LF line ends, dots undone
	TLS      bool
	AuthUser string
}

// startSMTP starts a server; configure it with setup before it accepts.
func startSMTP(t *testing.T, setup func(*smtpServer)) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{t: t, ln: ln, Addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	if setup != nil {
		setup(s)
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Close stops accepting, cuts every session and waits for them.
func (s *smtpServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Messages returns the accepted messages so far.
func (s *smtpServer) Messages() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.msgs...)
}

func (s *smtpServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *smtpServer) session(c net.Conn) {
	tp := textproto.NewConn(c)
	reply := func(lines ...string) bool {
		for _, l := range lines {
			if err := tp.PrintfLine("%s", l); err != nil {
				return false
			}
		}
		return true
	}
	var (
		isTLS, greeted bool
		authUser, from string
		to             []string
	)
	if !reply("220 hatui-test ESMTP") {
		return
	}
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "HELO":
			greeted = true
			reply("250 hatui-test")
		case "EHLO":
			greeted = true
			ext := []string{"hatui-test", "PIPELINING"}
			if s.TLS != nil && !isTLS {
				ext = append(ext, "STARTTLS")
			}
			if s.User != "" && (isTLS || s.TLS == nil) {
				ext = append(ext, "AUTH PLAIN")
			}
			for i, e := range ext {
				sep := "-"
				if i == len(ext)-1 {
					sep = " "
				}
				reply("250" + sep + e)
			}
		case "STARTTLS":
			if s.TLS == nil || isTLS {
				reply("502 5.5.1 STARTTLS not available")
				continue
			}
			reply("220 2.0.0 ready to start TLS")
			tc := tls.Server(c, s.TLS)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, isTLS, greeted = tc, true, false
			authUser, from, to = "", "", nil
			tp = textproto.NewConn(tc)
		case "AUTH":
			mech, initial, _ := strings.Cut(arg, " ")
			if s.User == "" || !strings.EqualFold(mech, "PLAIN") || (s.TLS != nil && !isTLS) {
				reply("504 5.5.4 mechanism not available")
				continue
			}
			if initial == "" {
				reply("334 ")
				if initial, err = tp.ReadLine(); err != nil {
					return
				}
			}
			raw, err := base64.StdEncoding.DecodeString(initial)
			parts := strings.Split(string(raw), "\x00")
			if err != nil || len(parts) != 3 || parts[1] != s.User || parts[2] != s.Pass {
				reply("535 5.7.8 authentication credentials invalid")
				continue
			}
			authUser = parts[1]
			reply("235 2.7.0 authentication succeeded")
		case "MAIL":
			switch {
			case !greeted:
				reply("503 5.5.1 EHLO first")
			case s.User != "" && authUser == "":
				reply("530 5.7.0 authentication required")
			case !strings.HasPrefix(strings.ToUpper(arg), "FROM:"):
				reply("501 5.5.4 syntax: MAIL FROM:<address>")
			default:
				from, to = angle(arg[5:]), nil
				reply("250 2.1.0 ok")
			}
		case "RCPT":
			if from == "" || !strings.HasPrefix(strings.ToUpper(arg), "TO:") {
				reply("503 5.5.1 MAIL first")
				continue
			}
			rcpt := angle(arg[3:])
			s.mu.Lock()
			f := s.RcptReply
			s.mu.Unlock()
			if f != nil {
				if r := f(rcpt); r != "" {
					reply(r)
					continue
				}
			}
			to = append(to, rcpt)
			reply("250 2.1.5 ok")
		case "DATA":
			if len(to) == 0 {
				reply("503 5.5.1 RCPT first")
				continue
			}
			reply("354 end data with <CR><LF>.<CR><LF>")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.datas++
			var r string
			if s.DataReply != nil {
				r = s.DataReply(s.datas)
			}
			if r == "" {
				s.msgs = append(s.msgs, smtpMessage{From: from, To: to, Data: data, TLS: isTLS, AuthUser: authUser})
			}
			s.mu.Unlock()
			from, to = "", nil
			if r != "" {
				reply(r)
				continue
			}
			reply("250 2.0.0 queued")
		case "RSET":
			from, to = "", nil
			reply("250 2.0.0 ok")
		case "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("502 5.5.2 command not recognised")
		}
	}
}

// angle returns the address inside <...>, ignoring parameters after it.
func angle(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			return s[i+1 : i+j]
		}
	}
	f, _, _ := strings.Cut(s, " ")
	return f
}
