package clickhouse

import (
	"errors"
	"fmt"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/sluicehq/sluice/internal/tlsfiles"
	"github.com/sluicehq/sluice/sinks"
)

// permanentCodes are the ClickHouse error codes by which the server rejects
// the inserted data itself, or the data does not fit the table's columns.
// Sending the same rows again would fail the same way. Codes for a server
// that is down, overloaded, out of memory or disk, read-only, or missing
// the table are left out: those pass, or need an operator, and the rows
// must wait rather than be dead-lettered.
var permanentCodes = map[int32]string{
	6:   "CANNOT_PARSE_TEXT",
	8:   "THERE_IS_NO_COLUMN",
	10:  "NOT_FOUND_COLUMN_IN_BLOCK",
	16:  "NO_SUCH_COLUMN_IN_TABLE",
	20:  "NUMBER_OF_COLUMNS_DOESNT_MATCH",
	26:  "CANNOT_PARSE_QUOTED_STRING",
	27:  "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
	38:  "CANNOT_PARSE_DATE",
	41:  "CANNOT_PARSE_DATETIME",
	43:  "ILLEGAL_TYPE_OF_ARGUMENT",
	44:  "ILLEGAL_COLUMN",
	53:  "TYPE_MISMATCH",
	69:  "ARGUMENT_OUT_OF_BOUND",
	70:  "CANNOT_CONVERT_TYPE",
	72:  "CANNOT_PARSE_NUMBER",
	117: "INCORRECT_DATA",
	128: "TOO_LARGE_ARRAY_SIZE",
	131: "TOO_LARGE_STRING_SIZE",
	190: "SIZES_OF_ARRAYS_DOESNT_MATCH",
	321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
	395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
	469: "VIOLATED_CONSTRAINT",
}

// isPermanent reports whether an INSERT error is the data's fault: the
// server rejected a value, or a value does not convert to its column's type
// (the driver checks this before sending), or an event is malformed. Such
// rows belong in the dead-letter topic. Everything else (unreachable or
// overloaded server, timeouts, cancelled contexts, unknown errors) is
// transient, to be retried until it passes, since losing events is worse
// than waiting. Write marks the errors it reports with sinks.Permanent, the
// one test its callers need.
func isPermanent(err error) bool {
	if err == nil {
		return false
	}
	var exc *ch.Exception
	if errors.As(err, &exc) {
		_, ok := permanentCodes[exc.Code]
		return ok
	}
	var (
		invalid   *invalidRowError
		convert   *conversionError
		converter *chcol.ColumnConverterError
		colErr    *chcol.Error
		typeErr   *chcol.UnsupportedColumnTypeError
	)
	return errors.As(err, &invalid) || errors.As(err, &convert) || errors.As(err, &converter) ||
		errors.As(err, &colErr) || errors.As(err, &typeErr) ||
		errors.Is(err, ch.ErrBatchInvalid)
}

// loginCodes are the ClickHouse error codes by which a server refuses a
// login: 18.16 says which part was wrong, servers from 20.x say only
// AUTHENTICATION_FAILED (whichever part it was, so as not to tell an
// attacker which users exist).
var loginCodes = map[int32]string{
	192: "UNKNOWN_USER",
	193: "WRONG_PASSWORD",
	194: "REQUIRED_PASSWORD",
	195: "IP_ADDRESS_NOT_ALLOWED",
	516: "AUTHENTICATION_FAILED",
}

// refusal returns a *sinks.RefusedError when err, from connecting with o,
// is a refused login or a failed TLS handshake, else nil. The driver's own
// messages are not kept in Detail: they are long, and a server's message
// could quote what it was sent.
func refusal(err error, o Options) *sinks.RefusedError {
	var exc *ch.Exception
	if errors.As(err, &exc) {
		if name, ok := loginCodes[exc.Code]; ok {
			return &sinks.RefusedError{Sink: "clickhouse", Addr: o.Addr, Reason: sinks.RefusedLogin,
				Detail: fmt.Sprintf("user %q: code %d %s", o.Username, exc.Code, name), Err: err}
		}
	}
	if why := tlsfiles.Refusal(err); why != "" {
		return &sinks.RefusedError{Sink: "clickhouse", Addr: o.Addr, Reason: sinks.RefusedTLS, Detail: why, Err: err}
	}
	return nil
}
