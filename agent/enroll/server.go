package enroll

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// request and reply travel as one JSON line each over TLS.
type request struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

type reply struct {
	Grant *Grant `json:"grant,omitempty"`
	Error string `json:"error,omitempty"`
}

// Server answers join requests for a store.
type Server struct {
	store *Store
	ln    net.Listener
	log   *slog.Logger
	wg    sync.WaitGroup
}

// Serve listens on the store's join address and answers until Close.
func Serve(s *Store, log *slog.Logger) (*Server, error) {
	cert, err := s.TLS()
	if err != nil {
		return nil, fmt.Errorf("join listener certificate: %w", err)
	}
	ln, err := tls.Listen("tcp", s.Listen(), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		return nil, fmt.Errorf("join listener: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &Server{store: s, ln: ln, log: log}
	srv.wg.Add(1)
	go srv.accept()
	return srv, nil
}

// Addr is where the server listens.
func (srv *Server) Addr() string { return srv.ln.Addr().String() }

// Close stops the listener and waits for open requests.
func (srv *Server) Close() error {
	err := srv.ln.Close()
	srv.wg.Wait()
	return err
}

func (srv *Server) accept() {
	defer srv.wg.Done()
	for {
		c, err := srv.ln.Accept()
		if err != nil {
			return
		}
		srv.wg.Add(1)
		go func() {
			defer srv.wg.Done()
			srv.handle(c)
		}()
	}
}

func (srv *Server) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var req request
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var rep reply
	if err != nil {
		rep.Error = "malformed join request"
	} else {
		g, err := srv.store.Redeem(req.ID, req.Secret, c.RemoteAddr().String())
		if err != nil {
			// The id only: a token's secret is never logged.
			srv.log.Warn("join refused", "token", req.ID, "from", c.RemoteAddr().String(), "reason", err.Error())
			rep.Error = err.Error()
		} else {
			srv.log.Info("join token redeemed", "token", req.ID, "node", g.Node, "from", c.RemoteAddr().String())
			rep.Grant = &g
		}
	}
	b, _ := json.Marshal(rep)
	_, _ = c.Write(append(b, '\n'))
}

// ErrRefused wraps the first node's refusal of a token.
var ErrRefused = errors.New("the first node refused the token")

// Redeem presents a token to its join listener and returns the grant.
// The listener's certificate must match the token's pin.
func Redeem(ctx context.Context, t Token) (Grant, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // the pin below is the verification
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the join listener sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			if hex.EncodeToString(sum[:]) != t.Pin {
				return fmt.Errorf("the join listener at %s is not the one the token names (certificate pin mismatch)", t.Addr)
			}
			return nil
		},
	}
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return Grant{}, fmt.Errorf("reaching the first node at %s: %w", t.Addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	b, _ := json.Marshal(request{ID: t.ID, Secret: t.Secret})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return Grant{}, fmt.Errorf("sending the join request: %w", err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return Grant{}, fmt.Errorf("reading the join answer: %w", err)
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return Grant{}, fmt.Errorf("reading the join answer: %w", err)
	}
	if rep.Error != "" {
		return Grant{}, fmt.Errorf("%w: %s", ErrRefused, rep.Error)
	}
	if rep.Grant == nil {
		return Grant{}, errors.New("the join answer carries no grant")
	}
	return *rep.Grant, nil
}
