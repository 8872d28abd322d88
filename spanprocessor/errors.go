package spanprocessor

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/internal/rpccode"
)

// ErrorCondition is a set of conditions under which the error trigger
// finds a span anomalous. Combine them with |.
type ErrorCondition uint8

const (
	// ErrorStatus: the span's status is Error. Reason "error".
	ErrorStatus ErrorCondition = 1 << iota
	// ExceptionEvent: the span recorded an "exception" event
	// (span.RecordError). Reason "exception".
	ExceptionEvent
	// HTTPServerError: a server span whose http.response.status_code (or
	// the older http.status_code) is 500 or more. Reason "http.server_error".
	HTTPServerError
	// GRPCError: a span whose gRPC status code is one of the server error
	// codes (see [WithGRPCErrorCodes]): in rpc.response.status_code, the
	// code's canonical name ("UNAVAILABLE", as otelgrpc v0.72 sets it), or
	// in the older integer rpc.grpc.status_code. Reason "grpc.error".
	GRPCError

	// DefaultErrorConditions is every condition.
	DefaultErrorConditions = ErrorStatus | ExceptionEvent | HTTPServerError | GRPCError
)

// Reasons given by the error conditions other than ErrorStatus.
const (
	ReasonException       = "exception"
	ReasonHTTPServerError = "http.server_error"
	ReasonGRPCError       = "grpc.error"
)

// defaultGRPCErrorCodes is the bit set of [DefaultGRPCErrorCodes].
const defaultGRPCErrorCodes = 1<<2 | 1<<4 | 1<<12 | 1<<13 | 1<<14 | 1<<15

// DefaultGRPCErrorCodes returns the gRPC status codes that count as server
// errors unless [WithGRPCErrorCodes] says otherwise: Unknown (2),
// DeadlineExceeded (4), Unimplemented (12), Internal (13), Unavailable (14)
// and DataLoss (15), the codes OpenTelemetry's semantic conventions mark
// as errors for server spans. The slice is the caller's.
func DefaultGRPCErrorCodes() []uint32 {
	var codes []uint32
	for c := range uint32(32) {
		if defaultGRPCErrorCodes&(1<<c) != 0 {
			codes = append(codes, c)
		}
	}
	return codes
}

const (
	keyHTTPStatus    = attribute.Key("http.response.status_code")
	keyHTTPStatusOld = attribute.Key("http.status_code")
	keyGRPCStatus    = attribute.Key("rpc.grpc.status_code")
	keyRPCStatus     = attribute.Key("rpc.response.status_code")
	exceptionEvent   = "exception"

	// statusKeyLens has bit n set for the length n of each status key.
	statusKeyLens = 1<<len(keyHTTPStatus) | 1<<len(keyHTTPStatusOld) | 1<<len(keyGRPCStatus) | 1<<len(keyRPCStatus)
)

// WithErrorConditions sets what the error trigger treats as an error; the
// default is [DefaultErrorConditions]. 0 turns the error trigger off.
func WithErrorConditions(c ErrorCondition) Option {
	return optionFunc(func(cfg config) config {
		cfg.errorConds = c
		return cfg
	})
}

// WithErrorTrigger turns the error trigger on (with the default
// conditions) or off. It is on by default.
func WithErrorTrigger(enabled bool) Option {
	if enabled {
		return WithErrorConditions(DefaultErrorConditions)
	}
	return WithErrorConditions(0)
}

// WithGRPCErrorCodes sets the gRPC status codes that the GRPCError
// condition treats as errors, replacing the default set
// ([DefaultGRPCErrorCodes]). Codes of 32 or more are ignored.
func WithGRPCErrorCodes(codes ...uint32) Option {
	return optionFunc(func(cfg config) config {
		var set uint32
		for _, c := range codes {
			if c < 32 {
				set |= 1 << c
			}
		}
		cfg.grpcCodes = set
		return cfg
	})
}

// classifyError checks the error conditions, cheapest first. On an SDK
// span every ReadOnlySpan accessor copies the whole span snapshot (about
// 400 bytes: its methods have value receivers), so each accessor is called
// at most once, SpanKind only for a 5xx status, and the attributes and
// events are read in place rather than copied element by element.
func (p *Processor) classifyError(s sdktrace.ReadOnlySpan) (string, bool) {
	conds := p.cfg.errorConds
	if conds&ErrorStatus != 0 && s.Status().Code == codes.Error {
		return ReasonError, true
	}
	if conds&(HTTPServerError|GRPCError) != 0 {
		attrs := s.Attributes()
		for i := range attrs {
			kv := &attrs[i]
			if n := len(kv.Key); n >= 64 || statusKeyLens&(1<<n) == 0 {
				continue // most keys: decided by their length alone
			}
			switch kv.Key {
			case keyHTTPStatus, keyHTTPStatusOld:
				if conds&HTTPServerError != 0 && kv.Value.AsInt64() >= 500 && s.SpanKind() == trace.SpanKindServer {
					return ReasonHTTPServerError, true
				}
			case keyGRPCStatus:
				if c := kv.Value.AsInt64(); conds&GRPCError != 0 && c >= 0 && c < 32 && p.cfg.grpcCodes&(1<<c) != 0 {
					return ReasonGRPCError, true
				}
			case keyRPCStatus:
				if conds&GRPCError != 0 && kv.Value.Type() == attribute.STRING {
					if c, ok := rpccode.Parse(kv.Value.AsString()); ok && p.cfg.grpcCodes&(1<<c) != 0 {
						return ReasonGRPCError, true
					}
				}
			}
		}
	}
	if conds&ExceptionEvent != 0 {
		events := s.Events()
		for i := range events {
			if events[i].Name == exceptionEvent {
				return ReasonException, true
			}
		}
	}
	return "", false
}
