package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// roles is what HELLO announces: the four client roles, each with the
// features this package implements (WAMP Advanced Profile, §Feature
// Announcement). payload_passthru_mode: ppt_* keys go out as given in
// Options (a CALL's, a PUBLISH's) or an Error's Details and come in in
// Result, Invocation and Event Details, with the binary payload as the
// one argument; the router refuses them from a client that does not
// announce the feature.
var roles = map[string]any{
	proto.RoleCaller: map[string]any{"features": map[string]any{
		proto.FeatureProgressiveCallResults:     true,
		proto.FeatureCallCanceling:              true,
		proto.FeatureCallTimeout:                true,
		proto.FeatureCallerIdentification:       true,
		proto.FeatureProgressiveCallInvocations: true,
		proto.FeaturePayloadPassthruMode:        true,
	}},
	proto.RoleCallee: map[string]any{"features": map[string]any{
		proto.FeatureProgressiveCallResults:     true,
		proto.FeatureCallCanceling:              true,
		proto.FeatureCallTimeout:                true,
		proto.FeatureCallerIdentification:       true,
		proto.FeaturePatternBasedRegistration:   true,
		proto.FeatureSharedRegistration:         true,
		proto.FeatureProgressiveCallInvocations: true,
		proto.FeaturePayloadPassthruMode:        true,
		"registration_revocation":               true,
	}},
	proto.RolePublisher: map[string]any{"features": map[string]any{
		proto.FeaturePublisherExclusion:          true,
		proto.FeaturePublisherIdentification:     true,
		proto.FeatureSubscriberBlackWhiteListing: true,
		proto.FeaturePayloadPassthruMode:         true,
	}},
	proto.RoleSubscriber: map[string]any{"features": map[string]any{
		proto.FeaturePatternBasedSubscription: true,
		proto.FeaturePublisherIdentification:  true,
		proto.FeaturePayloadPassthruMode:      true,
		// The router tells only subscribers that announce it of a
		// subscription it takes away (onRevoked).
		"subscription_revocation": true,
	}},
}

// hello builds the HELLO message.
//
// [HELLO, Realm|uri, Details|dict]
func (s *Session) hello() (*proto.Message, error) {
	m := &proto.Message{Type: proto.CodeHello, URI: []byte(s.cfg.Realm)}
	o := newOptions(s.ser, nil)
	o.setValue(proto.KeyRoles, roles)
	o.setValue(proto.KeyAuthMethods, s.cfg.AuthMethods)
	o.setString(proto.KeyAgent, s.cfg.Agent)
	if s.cfg.AuthID != "" {
		o.setString(proto.KeyAuthID, s.cfg.AuthID)
	}
	if s.cfg.AuthRole != "" {
		o.setString(proto.KeyAuthRole, s.cfg.AuthRole)
	}
	if s.cfg.AuthExtra != nil {
		o.setValue(proto.KeyAuthExtra, s.cfg.AuthExtra)
	}
	return m, o.apply(m)
}

// join runs the opening handshake on the calling goroutine, before the
// reader starts. ctx bounds it: its deadline becomes the read deadline, and
// its cancellation forces one.
func (s *Session) join(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		s.tr.setReadDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { s.tr.setReadDeadline(time.Unix(1, 0)) })
	err := s.handshake(ctx)
	// Done with the join's messages: a large WELCOME's (or CHALLENGE's)
	// buffer goes now, as the reader's messages' do once handled, not
	// when the router's next message comes (on an idle session, never).
	s.tr.release()
	if !stop() && err == nil {
		// ctx expired just as the join finished: the forced deadline may
		// land after the reset below, so give up rather than race it.
		err = ctx.Err()
	}
	if err == nil {
		err = s.tr.setReadDeadline(time.Time{})
	}
	return err
}

func (s *Session) handshake(ctx context.Context) error {
	m, err := s.hello()
	if err != nil {
		return err
	}
	if err := s.send(m); err != nil {
		return err
	}
	dec := proto.Decoder{TakeProtoKey: true} // as the reader's: see readLoop
	var in proto.Message
	challenges := 0
	for {
		b, err := s.tr.readMsg()
		if err != nil {
			return fmt.Errorf("client: join: %w", ctxErr(ctx, err))
		}
		if err := dec.Decode(s.ser, b, &in); err != nil {
			s.sendAbort(proto.URIProtocolViolation, err.Error())
			return fmt.Errorf("client: join: %w", err)
		}
		s.inProtoDict, _ = dec.ProtoKey() // the join's messages have no payload
		switch in.Type {
		case proto.CodeWelcome:
			if in.ID == 0 {
				// Ids are in [1, 2^53] (WAMP §IDs); the decoder refuses
				// those past 2^53, 0 is its to pass.
				msg := "WELCOME with session id 0"
				s.sendAbort(proto.URIProtocolViolation, msg)
				return &joinViolation{msg}
			}
			s.id = in.ID
			s.details = s.controlDictOf(in.Dict)
			return nil
		case proto.CodeAbort:
			return &Error{URI: string(in.URI), Details: s.controlDictOf(in.Dict)}
		case proto.CodeChallenge:
			if challenges++; challenges > maxChallengeRounds {
				msg := fmt.Sprintf("more than %d CHALLENGEs in one join", maxChallengeRounds)
				s.sendAbort(proto.URIProtocolViolation, msg)
				return &joinViolation{msg}
			}
			if err := s.answerChallenge(ctx, &in); err != nil {
				return err
			}
		default:
			msg := in.Type.String() + " before WELCOME"
			s.sendAbort(proto.URIProtocolViolation, msg)
			return &joinViolation{msg}
		}
	}
}

// joinViolation ends a join in which the router broke the protocol (a
// fifth CHALLENGE, a CHALLENGE for a method HELLO did not offer, WELCOME
// with session id 0, another message before WELCOME): the client has
// sent ABORT wamp.error.protocol_violation. A Client's reconnect loop
// logs it at WARN once a streak (refusalLog).
type joinViolation struct{ msg string }

func (e *joinViolation) Error() string {
	return "client: join: protocol violation by the router: " + e.msg
}

// maxChallengeRounds is how many CHALLENGEs one join answers: WAMP's
// authentication methods (ticket, wampcra, scram, cryptosign) take one
// round, and a router that answered every AUTHENTICATE with another
// CHALLENGE had Config.OnChallenge run without bound within DialTimeout
// (each a token fetched, a key's signature over the router's choice).
const maxChallengeRounds = 4

// answerChallenge answers a CHALLENGE with AUTHENTICATE, or aborts.
//
// [CHALLENGE, AuthMethod|string, Extra|dict]
// [AUTHENTICATE, Signature|string, Extra|dict]
func (s *Session) answerChallenge(ctx context.Context, in *proto.Message) error {
	method := string(in.URI)
	if !slices.Contains(s.cfg.AuthMethods, method) {
		// The router picks one of the methods HELLO offered. Another
		// (ticket asked of a client that offered wampcra: its password
		// in clear) is not put to OnChallenge, which may answer every
		// challenge with the user's secret.
		msg := fmt.Sprintf("CHALLENGE for authmethod %q, which HELLO did not offer (%s)", method, strings.Join(s.cfg.AuthMethods, ", "))
		s.sendAbort(proto.URIProtocolViolation, msg)
		return &joinViolation{msg}
	}
	if s.cfg.OnChallenge == nil {
		s.sendAbort(proto.URIAuthenticationFailed, "no challenge handler")
		return fmt.Errorf("client: join: router sent a %q CHALLENGE and Config.OnChallenge is nil", method)
	}
	sig, extra, err := s.awaitChallenge(ctx, method, s.dictOf(in.Dict))
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("client: join: answering the %q challenge: %w", method, err)
	}
	if err != nil {
		reason := err.Error()
		if _, ok := err.(challengePanic); ok {
			reason = "client error" // the panic's value is not the router's to read
		}
		s.sendAbort(proto.URIAuthenticationFailed, reason)
		return fmt.Errorf("client: join: answering the %q challenge: %w", method, err)
	}
	m := &proto.Message{Type: proto.CodeAuthenticate, URI: []byte(sig)}
	if err := newOptions(s.ser, extra).apply(m); err != nil {
		return err
	}
	return s.send(m)
}

// awaitChallenge runs onChallenge on a goroutine of its own and waits for
// its answer within ctx, the join's: Dial's ctx and DialTimeout bound the
// whole join, and an OnChallenge that did not return (a token fetched
// over a network without a timeout, a key waiting for a touch) held Dial
// past them, and under Connect a Client.Close from any other goroutine
// for as long. When ctx ends first its error is returned and the answer,
// when it comes, is dropped.
func (s *Session) awaitChallenge(ctx context.Context, method string, extra map[string]any) (string, map[string]any, error) {
	type answer struct {
		sig   string
		extra map[string]any
		err   error
	}
	ch := make(chan answer, 1)
	go func() {
		var a answer
		a.sig, a.extra, a.err = s.onChallenge(method, extra)
		ch <- a
	}()
	select {
	case a := <-ch:
		return a.sig, a.extra, a.err
	case <-ctx.Done():
		return "", nil, ctx.Err()
	}
}

// onChallenge calls Config.OnChallenge, turning a panic into an error: the
// join then aborts and Dial closes the connection. Before, the panic went
// up through Dial with the socket left open (the router holding it until
// hello_timeout, the client until a GC), and under Connect it crashed the
// program on the Client's goroutine.
func (s *Session) onChallenge(method string, extra map[string]any) (sig string, authExtra map[string]any, err error) {
	defer func() {
		if p := recover(); p != nil {
			sig, authExtra = "", nil
			err = challengePanic(fmt.Sprintf("Config.OnChallenge panicked: %v", p))
		}
	}()
	return s.cfg.OnChallenge(method, extra)
}

// challengePanic is the error of a Config.OnChallenge that panicked.
type challengePanic string

func (e challengePanic) Error() string { return string(e) }
