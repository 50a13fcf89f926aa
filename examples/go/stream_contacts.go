// Command stream_contacts streams one contact list from contacts-gateway and prints it as JSON
// lines on stdout, byte for byte as contacts-cli and the Python and Node examples do.
//
// A Go caller of contacts.v1.ContactService/StreamContacts (Debian's grpc-go 1.33) with the resume
// logic of the C++ client (client/contacts_client.cc): when a call ends with UNAVAILABLE (the
// gateway restarted or drained, or its upstream kept failing) or RESOURCE_EXHAUSTED (rate
// limited), wait and call again with the resume token of the last message received, so every
// contact is printed exactly once and in order. The wait is the delay the gateway advises
// (google.rpc.RetryInfo in grpc-status-details-bin, at most 60 s), else a full-jitter backoff; a
// resume_token in the error's google.rpc.ErrorInfo is used as the token. It gives up after
// --max-resumes resumes in a row without a new contact; any other status ends the stream at once.
// Resume notes, the summary and errors go to stderr; the exit code is the gRPC status code
// (0 = OK), 64 for a usage error, 66 when a credential file (or $CONTACTS_TOKEN) cannot be read or
// used.
//
// Logging in: --token-file (else $CONTACTS_TOKEN) sends `authorization: Bearer <token>`; --ca-file
// (or --cert-file) switches to TLS, --cert-file/--key-file present a client certificate (mutual
// TLS).
//
// Built offline in GOPATH mode against Debian's packages, with the contacts.v1 stubs generated at
// build time (examples/CMakeLists.txt): cmake --build build --target contacts_go_example, then
//
//	build/examples/go/stream_contacts --target localhost:50051 --stream-id st-... --list-id cl-... --account-id ...
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"sync/atomic"
	"time"

	contactsv1 "github.com/contacts-gateway/contacts-gateway/gen/go/contacts/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	maxRetryDelay  = 60 * time.Second   // the most of a RetryInfo delay that is waited
	connectTimeout = 20 * time.Second   // how long a call waits for a gateway to answer
	errorDomain    = "contacts-gateway" // ErrorInfo.domain of the gateway's errors
	exitUsage      = 64
	exitNoInput    = 66 // a credential file (or $CONTACTS_TOKEN) cannot be read or used
)

type options struct {
	target, streamID, listID, accountID, resumeToken     string
	pageSize, batchSize                                  int
	maxContacts                                          int64
	maxResumes                                           int
	caFile, certFile, keyFile, tokenFile, jwtFile, appID string
}

func parseFlags(args []string) (*options, error) {
	var o options
	fs := flag.NewFlagSet("stream_contacts", flag.ContinueOnError)
	fs.StringVar(&o.target, "target", "127.0.0.1:50051", "gateway `HOST:PORT`")
	fs.StringVar(&o.streamID, "stream-id", "", "bot (stream) id that owns the list (required)")
	fs.StringVar(&o.listID, "list-id", "", "contact list id (required)")
	fs.StringVar(&o.accountID, "account-id", "", "Kore.ai account id of the list (required)")
	fs.IntVar(&o.pageSize, "page-size", 0, "contacts per upstream page (0 = the gateway's default)")
	fs.IntVar(&o.batchSize, "batch-size", 0, "most contacts per message (0 = the gateway's default)")
	fs.Int64Var(&o.maxContacts, "max-contacts", 0, "stop after N contacts (0 = all)")
	fs.StringVar(&o.resumeToken, "resume-token", "", "continue after an earlier run's last contact")
	fs.IntVar(&o.maxResumes, "max-resumes", 5, "resumes in a row without a new contact before giving up")
	fs.StringVar(&o.caFile, "ca-file", "", "use TLS, trusting the CA certificates in this PEM `FILE` (without it or --cert-file: plaintext)")
	fs.StringVar(&o.certFile, "cert-file", "", "use TLS and present this PEM client certificate `FILE` (mutual TLS; needs --key-file; without --ca-file the system's CAs are trusted)")
	fs.StringVar(&o.keyFile, "key-file", "", "the client certificate's PEM private key `FILE`")
	fs.StringVar(&o.tokenFile, "token-file", "", "send the token in this `FILE` as metadata `authorization: Bearer <token>` (default: $CONTACTS_TOKEN)")
	fs.StringVar(&o.jwtFile, "jwt-file", "", "send the caller's own Kore.ai JWT in this `FILE` as metadata `auth`")
	fs.StringVar(&o.appID, "app-id", "", "send the app (client) `ID` as metadata `iid`")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, f := range []struct{ name, value string }{{"stream-id", o.streamID}, {"list-id", o.listID}, {"account-id", o.accountID}} {
		if f.value == "" {
			return nil, fmt.Errorf("--%s is required", f.name)
		}
	}
	if o.pageSize < 0 || o.batchSize < 0 || o.maxContacts < 0 || o.maxResumes < 0 {
		return nil, errors.New("--page-size, --batch-size, --max-contacts and --max-resumes want a non-negative integer")
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, errors.New("--cert-file and --key-file go together")
	}
	return &o, nil
}

// credentialError: a credential file or $CONTACTS_TOKEN cannot be used; it never holds a token.
type credentialError struct{ msg string }

func (e *credentialError) Error() string { return e.msg }

func readFile(path string) ([]byte, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return nil, &credentialError{fmt.Sprintf("cannot read %s: %v", path, err)}
	}
	if strings.TrimSpace(string(content)) == "" {
		return nil, &credentialError{path + " is empty"}
	}
	return content, nil
}

// checkedToken: a token as metadata carries it, printable ASCII (0x20-0x7E) only.
func checkedToken(token, source string) (string, error) {
	for i := 0; i < len(token); i++ {
		if token[i] < 0x20 || token[i] > 0x7E {
			return "", &credentialError{source + " holds characters other than printable ASCII"}
		}
	}
	return token, nil
}

func tokenFromFile(path string) (string, error) {
	content, err := readFile(path)
	if err != nil {
		return "", err
	}
	return checkedToken(strings.TrimSpace(string(content)), path)
}

// callMetadata: what every call sends, as key, value pairs: bearer token, pass-through JWT, app id.
func callMetadata(o *options) ([]string, error) {
	var pairs []string
	token, envToken := "", strings.TrimSpace(os.Getenv("CONTACTS_TOKEN"))
	var err error
	if o.tokenFile != "" {
		token, err = tokenFromFile(o.tokenFile)
	} else if envToken != "" {
		token, err = checkedToken(envToken, "CONTACTS_TOKEN")
	}
	if err != nil {
		return nil, err
	}
	if token != "" {
		pairs = append(pairs, "authorization", "Bearer "+token)
	}
	if o.jwtFile != "" {
		jwt, err := tokenFromFile(o.jwtFile)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, "auth", jwt)
	}
	if o.appID != "" {
		appID, err := checkedToken(o.appID, "--app-id")
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, "iid", appID)
	}
	return pairs, nil
}

// transport: TLS when --ca-file or --cert-file is given, else plaintext.
func transport(o *options) (grpc.DialOption, error) {
	if o.caFile == "" && o.certFile == "" {
		return grpc.WithInsecure(), nil
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := readFile(o.caFile)
		if err != nil {
			return nil, err
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &credentialError{o.caFile + " holds no PEM certificate"}
		}
	}
	if o.certFile != "" {
		certPEM, err := readFile(o.certFile)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readFile(o.keyFile)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, &credentialError{fmt.Sprintf("cannot use %s with %s: %v", o.certFile, o.keyFile, err)}
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(config)), nil
}

// rfc3339 formats UTC with milliseconds, as contacts-cli prints it: "2024-01-02T03:04:05.120Z"; null when unset.
func appendTime(b []byte, t *timestamppb.Timestamp) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = time.Unix(t.GetSeconds(), int64(t.GetNanos())).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	return append(b, '"')
}

// appendJSONString escapes as contacts-cli does (client/contact_format.cc): quote, backslash and
// control characters; every other byte as it is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

func appendContact(b []byte, c *contactsv1.Contact) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, c.GetId())
	b = append(b, `,"phone_number":`...)
	b = appendJSONString(b, c.GetPhoneNumber())
	b = append(b, `,"create_time":`...)
	b = appendTime(b, c.GetCreateTime())
	b = append(b, `,"update_time":`...)
	b = appendTime(b, c.GetUpdateTime())
	return append(b, "}\n"...)
}

// backoffDelay: full jitter, uniform in [0, min(10 s, 0.2 s * 2^(attempt-1))], as ResumeBackoff in C++.
func backoffDelay(attempt int) time.Duration {
	limit := 200 * time.Millisecond
	for i := 1; i < attempt && limit < 10*time.Second; i++ {
		limit *= 2
	}
	if limit > 10*time.Second {
		limit = 10 * time.Second
	}
	return time.Duration(rand.Float64() * float64(limit))
}

// advice is what the gateway's rich error details say, as ParseErrorAdvice in C++: a
// google.rpc.Status in grpc-status-details-bin whose details hold google.rpc.ErrorInfo (domain
// contacts-gateway) and google.rpc.RetryInfo.
type advice struct {
	reason, token string
	delay         *time.Duration
}

func errorAdvice(st *status.Status) advice {
	var a advice
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() == errorDomain {
				a.reason, a.token = d.GetReason(), d.GetMetadata()["resume_token"]
			}
		case *errdetails.RetryInfo:
			if d.GetRetryDelay() != nil {
				delay := d.GetRetryDelay().AsDuration()
				a.delay = &delay
			}
		}
	}
	return a
}

type streamState struct {
	printed, resumes, withoutProgress int
	token                             string
}

// callOnce runs one call, printing its contacts, and returns how it ended.
func callOnce(client contactsv1.ContactServiceClient, request *contactsv1.StreamContactsRequest,
	pairs []string, out *bufio.Writer, state *streamState) *status.Status {
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), pairs...))
	defer cancel()
	// A restarting gateway is waited for (wait for ready), but only until connectTimeout: the
	// gateway sends its headers as soon as it takes the call.
	var gaveUp int32
	watchdog := time.AfterFunc(connectTimeout, func() { atomic.StoreInt32(&gaveUp, 1); cancel() })
	stream, err := client.StreamContacts(ctx, request, grpc.WaitForReady(true))
	if err == nil {
		_, err = stream.Header()
	}
	watchdog.Stop()
	if atomic.LoadInt32(&gaveUp) == 1 {
		return status.Newf(codes.Unavailable, "no gateway answered within %v", connectTimeout)
	}
	var line []byte
	for err == nil {
		var response *contactsv1.StreamContactsResponse
		if response, err = stream.Recv(); err != nil {
			break
		}
		for _, contact := range response.GetContacts() {
			line = appendContact(line[:0], contact)
			out.Write(line)
		}
		state.printed += len(response.GetContacts())
		if len(response.GetContacts()) > 0 {
			state.withoutProgress = 0
		}
		if response.GetResumeToken() != "" {
			state.token = response.GetResumeToken()
		}
	}
	if err == io.EOF {
		return status.New(codes.OK, "")
	}
	return status.Convert(err)
}

func run(args []string) int {
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v (see --help)\n", err)
		return exitUsage
	}
	pairs, err := callMetadata(o)
	var dialTransport grpc.DialOption
	if err == nil {
		dialTransport, err = transport(o)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return exitNoInput
	}
	// Quick reconnects (as GatewayChannelArguments in C++), so a resume finds a restarted gateway.
	conn, err := grpc.Dial(o.target, dialTransport,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: connectTimeout,
		}))
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return exitUsage
	}
	defer conn.Close()
	client := contactsv1.NewContactServiceClient(conn)
	request := &contactsv1.StreamContactsRequest{
		StreamId: o.streamID, ContactListId: o.listID, AccountId: o.accountID,
		PageSize: int32(o.pageSize), MaxBatchSize: int32(o.batchSize), MaxContacts: o.maxContacts,
	}
	out := bufio.NewWriterSize(os.Stdout, 256<<10)
	state := &streamState{token: o.resumeToken}
	var st *status.Status
	for {
		request.ResumeToken = state.token
		st = callOnce(client, request, pairs, out, state)
		a := errorAdvice(st)
		// Every message comes before the status: the error's token is never behind the last one's.
		if a.token != "" {
			state.token = a.token
		}
		resumable := st.Code() == codes.Unavailable || st.Code() == codes.ResourceExhausted
		if !resumable || state.withoutProgress >= o.maxResumes {
			out.Flush()
			if st.Code() != codes.OK {
				reason := ""
				if a.reason != "" {
					reason = " (" + a.reason + ")"
				}
				fmt.Fprintf(os.Stderr, "stream ended: %s%s: %s\n", codeName(st.Code()), reason, st.Message())
			}
			break
		}
		state.withoutProgress++
		state.resumes++
		wait, advised := backoffDelay(state.withoutProgress), ""
		if a.delay != nil {
			wait, advised = *a.delay, " as advised"
			if wait < 0 {
				wait = 0
			} else if wait > maxRetryDelay {
				wait = maxRetryDelay
			}
		}
		fmt.Fprintf(os.Stderr, "resuming after %s (%s) in %.2fs%s, %d contacts so far\n",
			codeName(st.Code()), st.Message(), wait.Seconds(), advised, state.printed)
		out.Flush()
		time.Sleep(wait)
	}
	summary := fmt.Sprintf("%d contacts, %d resumes", state.printed, state.resumes)
	if st.Code() != codes.OK {
		summary += "; resume token: " + state.token
	}
	fmt.Fprintln(os.Stderr, summary)
	return int(st.Code())
}

// codeName: the gRPC spec's name of a code ("RESOURCE_EXHAUSTED"), as the other clients print it.
func codeName(code codes.Code) string {
	names := map[codes.Code]string{
		codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
		codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
		codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
		codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
		codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
		codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED",
		codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS",
		codes.Unauthenticated: "UNAUTHENTICATED",
	}
	if name, ok := names[code]; ok {
		return name
	}
	return code.String()
}

func main() {
	rand.Seed(time.Now().UnixNano())
	os.Exit(run(os.Args[1:]))
}
