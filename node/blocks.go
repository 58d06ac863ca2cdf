package node

import (
	"errors"
	"fmt"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/capture"
)

var _ admin.Blocks = (*Node)(nil)

// errCaptureOff answers the blocks endpoints when capture is off: the
// signatures are the capture store's.
var errCaptureOff = fmt.Errorf("capture.enabled is off: blocked requests are grouped by signature only while they are captured (the last 1,000 verdicts are in memory: wafcanary explain REQUEST_ID): %w", admin.ErrNotFound)

// Blocks implements admin.Blocks.
func (s *Node) Blocks(n int) (admin.BlockList, error) {
	if s.capture == nil {
		return admin.BlockList{}, errCaptureOff
	}
	return admin.BlockList{Signatures: s.capture.List(n), Store: s.capture.Stats()}, nil
}

// Block implements admin.Blocks.
func (s *Node) Block(ref string) (admin.BlockGroup, error) {
	if s.capture == nil {
		return admin.BlockGroup{}, errCaptureOff
	}
	sum, recs, err := s.capture.Records(ref)
	if err != nil {
		return admin.BlockGroup{}, signatureError(err)
	}
	return admin.BlockGroup{Summary: sum, Captures: recs}, nil
}

// Pin implements admin.Blocks.
func (s *Node) Pin(ref string, pinned bool) (capture.Summary, error) {
	if s.capture == nil {
		return capture.Summary{}, errCaptureOff
	}
	sum, err := s.capture.Pin(ref, pinned)
	if err != nil {
		return capture.Summary{}, signatureError(err)
	}
	what := "unpinned"
	if pinned {
		what = "pinned"
	}
	s.log.Info("capture signature "+what, "signature", sum.Sig, "host", sum.Host, "path", sum.Path)
	return sum, nil
}

// signatureError maps the capture store's errors to the admin API's.
func signatureError(err error) error {
	switch {
	case errors.Is(err, capture.ErrNoSignature), errors.Is(err, capture.ErrAmbiguous):
		return fmt.Errorf("%w: %w", err, admin.ErrNotFound)
	case errors.Is(err, capture.ErrPinLimit):
		return admin.Conflict(err)
	}
	return err
}
