package console_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/anthropic"
	"github.com/troupehq/troupe/engine/model/fake"
)

// testPNG is a real 2×2 PNG.
func testPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

type runUpload struct {
	name string
	data []byte
}

// multipartRun is a run form: its fields and its files (field files, as
// AgentOS clients send them).
func multipartRun(t *testing.T, fields map[string]string, ups ...runUpload) (string, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		require.NoError(t, w.WriteField(k, v))
	}
	for _, u := range ups {
		fw, err := w.CreateFormFile("files", u.name)
		require.NoError(t, err)
		_, err = fw.Write(u.data)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return w.FormDataContentType(), b.String()
}

// runWithFiles posts a non-streaming run with files and decodes the answer.
func runWithFiles(t *testing.T, ts *testServer, path, key string, fields map[string]string, want int, ups ...runUpload) runJSON {
	t.Helper()
	fields["stream"] = "false"
	ct, body := multipartRun(t, fields, ups...)
	status, out, _ := ts.do(http.MethodPost, path, key, ct, body)
	require.Equal(t, want, status, out)
	var run runJSON
	if want == http.StatusOK {
		require.NoError(t, json.Unmarshal([]byte(out), &run), out)
	}
	return run
}

// TestRunImageOpenAIWire: an image sent with a run reaches an OpenAI-wire
// server as an image_url part with a data URL beside the message's text
// part; the next turn's history has the text (which names the image) and
// not the image.
func TestRunImageOpenAIWire(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withFiles(t.TempDir(), files.Limits{}))
	pic := testPNG(t)
	run := runWithFiles(t, ts, "/agents/writer/runs", "", map[string]string{"message": "what is this?"}, http.StatusOK, runUpload{"cat.png", pic})

	reqs := ts.v.requests()
	require.Len(t, reqs, 1)
	last := reqs[0].Messages[len(reqs[0].Messages)-1]
	require.Equal(t, "user", last.Role)
	withImage := "what is this?\n\n<attached_image name=\"cat.png\" type=\"image/png\"/>"
	require.Equal(t, []any{
		map[string]any{"type": "text", "text": withImage},
		map[string]any{"type": "image_url", "image_url": map[string]any{"url": "data:image/png;base64," + base64.StdEncoding.EncodeToString(pic)}},
	}, last.Content)

	// The stored input is what the user typed.
	var got runJSON
	ts.json(http.MethodGet, "/agents/writer/runs/"+run.RunID, "", "", http.StatusOK, &got)
	require.Equal(t, "what is this?", got.RunInput)

	// A later turn replays the text, images not.
	runWithFiles(t, ts, "/agents/writer/runs", "", map[string]string{"message": "and now?", "session_id": run.SessionID}, http.StatusOK)
	reqs = ts.v.requests()
	require.Len(t, reqs, 2)
	var roles []string
	for _, m := range reqs[1].Messages {
		roles = append(roles, m.Role)
		require.IsType(t, "", m.Content, "no message of a later turn has parts")
	}
	require.Equal(t, []string{"system", "user", "assistant", "user"}, roles)
	require.Equal(t, withImage, reqs[1].Messages[1].Content)
}

// anthropicFake is a loopback Messages API server that records request
// bodies and answers with one text block.
type anthropicFake struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []map[string]any
}

func newAnthropicFake(t *testing.T) *anthropicFake {
	f := &anthropicFake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.URL.Path != "/v1/messages" {
			http.Error(w, `{"type":"error","error":{"type":"invalid_request_error","message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, body)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-test",`+
			`"content":[{"type":"text","text":"a red pixel"}],"stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":3}}`)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *anthropicFake) requests() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.reqs...)
}

const visionSpecs = "kind: Model\nname: claude\nprovider: anthropic\nmodel: claude-test\napi_key: sk-test\n---\n" +
	"kind: Agent\nname: seer\nmodel: claude\n---\n" +
	"kind: Team\nname: seers\nmode: coordinate\nmodel: claude\nmembers: [seer]\n"

// TestRunImageAnthropicWire: an image sent with an agent's run, and with a
// team's (its leader), reaches the Messages API as an image block with a
// base64 source before the text block.
func TestRunImageAnthropicWire(t *testing.T) {
	t.Parallel()
	vendor := newAnthropicFake(t)
	ts := startServer(t, withFiles(t.TempDir(), files.Limits{}), withSpecs(visionSpecs),
		withProvider("anthropic", anthropic.New(anthropic.Options{BaseURL: vendor.srv.URL, APIKey: "sk-test"})))
	pic := testPNG(t)
	for i, path := range []string{"/agents/seer/runs", "/teams/seers/runs"} {
		run := runWithFiles(t, ts, path, "", map[string]string{"message": "describe it"}, http.StatusOK, runUpload{"pixel.png", pic})
		require.Equal(t, "a red pixel", run.Content)
		reqs := vendor.requests()
		require.Len(t, reqs, i+1)
		msgs := reqs[i]["messages"].([]any)
		require.Equal(t, map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "image", "source": map[string]any{"type": "base64", "media_type": "image/png", "data": base64.StdEncoding.EncodeToString(pic)}},
			map[string]any{"type": "text", "text": "describe it\n\n<attached_image name=\"pixel.png\" type=\"image/png\"/>"},
		}}, msgs[len(msgs)-1], path)
	}
}

// TestRunDocumentText: a Markdown file's and a PDF's text reach the model
// as delimited sections after the message, read by the knowledge readers.
func TestRunDocumentText(t *testing.T) {
	t.Parallel()
	script := fake.New(fake.Step{Content: "read"})
	ts := startServer(t, withFiles(t.TempDir(), files.Limits{}), withProvider("anthropic", script), withSpecs(historyModels+"kind: Agent\nname: reader\nmodel: scripted\n"))
	pdf, err := os.ReadFile(filepath.Join("..", "engine", "knowledge", "reader", "testdata", "manual.pdf"))
	require.NoError(t, err)
	md := "# Notes\n\nThe launch is on *Tuesday*.\n"
	runWithFiles(t, ts, "/agents/reader/runs", "", map[string]string{"message": "summarize"}, http.StatusOK,
		runUpload{"notes.md", []byte(md)}, runUpload{"manual.pdf", pdf})
	reqs := script.Requests()
	require.Len(t, reqs, 1)
	got := reqs[0].Messages[len(reqs[0].Messages)-1]
	require.Equal(t, model.RoleUser, got.Role)
	require.Empty(t, got.Images)
	require.True(t, strings.HasPrefix(got.Content, "summarize\n\n<attached_file name=\"notes.md\" type=\"text/markdown\">\n# Notes\n\nThe launch is on *Tuesday*.\n</attached_file>\n\n"+
		"<attached_file name=\"manual.pdf\" type=\"application/pdf\">\nTroupe Operator Manual\n\nChapter 1: Installation\n"), got.Content)
	require.Contains(t, got.Content, "Hybrid search combines vector similarity with keyword ranking.")
	require.True(t, strings.HasSuffix(got.Content, "</attached_file>"))
}

// TestRunFileLimits: files over the limits, of types nothing reads, or sent
// where they cannot go are refused with a status and what to do, and
// nothing is kept.
func TestRunFileLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ts := startServer(t, withFiles(dir, files.Limits{MaxFileBytes: 1 << 10, MaxRunBytes: 1536, MaxFiles: 2}))
	bare := startServer(t)
	small := []byte(strings.Repeat("a", 800))
	tests := []struct {
		name   string
		ts     *testServer
		path   string
		fields map[string]string
		ups    []runUpload
		status int
		detail string
	}{
		{"file over its limit", ts, "/agents/writer/runs", nil, []runUpload{{"big.txt", bytes.Repeat([]byte("a"), 1025)}},
			http.StatusRequestEntityTooLarge, `file too large: "big.txt" has 1025 bytes, the limit is 1024 bytes per file; send a smaller file`},
		{"files over the run's limit", ts, "/agents/writer/runs", nil, []runUpload{{"a.txt", small}, {"b.txt", small}},
			http.StatusRequestEntityTooLarge, "file too large: the files add up to more than 1536 bytes per run; send fewer or smaller files"},
		{"too many files", ts, "/agents/writer/runs", nil, []runUpload{{"a.txt", []byte("a")}, {"b.txt", []byte("b")}, {"c.txt", []byte("c")}},
			http.StatusRequestEntityTooLarge, "file too large: 3 files, at most 2 may be sent with one run; send fewer"},
		{"binary type", ts, "/agents/writer/runs", nil, []runUpload{{"a.zip", []byte("PK\x03\x04\x14\x00\x00\x00")}},
			http.StatusUnsupportedMediaType, `unsupported file type: "a.zip": unsupported file type:`},
		{"json that does not parse", ts, "/agents/writer/runs", nil, []runUpload{{"a.json", []byte("{not json")}},
			http.StatusUnsupportedMediaType, `"a.json"`},
		{"background", ts, "/agents/writer/runs", map[string]string{"background": "true"}, []runUpload{{"a.txt", []byte("a")}},
			http.StatusUnprocessableEntity, "files cannot be sent with background: true; send them on a foreground run"},
		{"workflow", ts, "/workflows/none/runs", nil, []runUpload{{"a.txt", []byte("a")}},
			http.StatusUnprocessableEntity, "workflows take an input object, not files; send files to an agent or a team"},
		{"server without files", bare, "/agents/writer/runs", nil, []runUpload{{"a.txt", []byte("a")}},
			http.StatusUnprocessableEntity, "this server takes no files with runs; send the message alone"},
		// Accepted files, stored, then a run that does not start: its
		// files are deleted again.
		{"unknown agent", ts, "/agents/nope/runs", nil, []runUpload{{"a.txt", []byte("a")}},
			http.StatusNotFound, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := map[string]string{"message": "hi", "stream": "false"}
			for k, v := range tt.fields {
				fields[k] = v
			}
			ct, body := multipartRun(t, fields, tt.ups...)
			status, out, _ := tt.ts.do(http.MethodPost, tt.path, "", ct, body)
			require.Equal(t, tt.status, status, out)
			var e struct{ Detail string }
			require.NoError(t, json.Unmarshal([]byte(out), &e))
			require.Contains(t, e.Detail, tt.detail)
		})
	}
	// Nothing refused was kept, nor even stored for a while: the run
	// service stores a run's bytes once the run is validated.
	stored := func() []string {
		var kept []string
		require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				kept = append(kept, p)
			}
			return err
		}))
		return kept
	}
	require.Empty(t, stored())
	require.Zero(t, ts.files.puts.Load())

	// A request repeated with its Idempotency-Key replays the first run:
	// its files are stored once.
	ct, body := multipartRun(t, map[string]string{"message": "hi", "stream": "false"}, runUpload{"a.txt", []byte("alpha")})
	var runIDs []string
	for range 2 {
		req, err := http.NewRequest(http.MethodPost, ts.url+"/agents/writer/runs", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Idempotency-Key", "files-once")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var run runJSON
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&run))
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		runIDs = append(runIDs, run.RunID)
	}
	require.Equal(t, runIDs[0], runIDs[1], "the second request replays the first run")
	require.Equal(t, int64(1), ts.files.puts.Load())
	require.Len(t, stored(), 1)
}

// TestRunFileIsolation: a run's files are listed and downloaded by the
// session's user and an administrator, by nobody else, through the API and
// the console; deleting the session deletes their bytes.
func TestRunFileIsolation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ts := startServer(t, withFiles(dir, files.Limits{}), withKeys(keys))
	pic := testPNG(t)
	run := runWithFiles(t, ts, "/agents/writer/runs", aliceKey, map[string]string{"message": "see"}, http.StatusOK,
		runUpload{"cat.png", pic}, runUpload{"notes.txt", []byte("remember the milk")})

	var listed []struct {
		ID, RunID, Name, URL string
		MediaType            string `json:"media_type"`
		Size                 int64
	}
	ts.json(http.MethodGet, "/sessions/"+run.SessionID+"/files", aliceKey, "", http.StatusOK, &listed)
	require.Len(t, listed, 2)
	require.Equal(t, "cat.png", listed[0].Name)
	require.Equal(t, "image/png", listed[0].MediaType)
	require.Equal(t, int64(len(pic)), listed[0].Size)
	require.Equal(t, "notes.txt", listed[1].Name)
	require.Equal(t, "/sessions/"+run.SessionID+"/files/"+listed[0].ID, listed[0].URL)

	tests := []struct {
		name   string
		key    string
		status int
	}{
		{"owner", aliceKey, http.StatusOK},
		{"admin", adminKey, http.StatusOK},
		{"another user", bobKey, http.StatusNotFound},
		{"no scope", readerKey, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, hdr := ts.do(http.MethodGet, listed[0].URL, tt.key, "", "")
			require.Equal(t, tt.status, status, body)
			if tt.status == http.StatusOK {
				require.Equal(t, string(pic), body)
				require.Equal(t, "image/png", hdr.Get("Content-Type"))
				require.Equal(t, `inline; filename=cat.png`, hdr.Get("Content-Disposition"))
				status, body, hdr = ts.do(http.MethodGet, listed[1].URL, tt.key, "", "")
				require.Equal(t, http.StatusOK, status)
				require.Equal(t, "remember the milk", body)
				require.Equal(t, `attachment; filename=notes.txt`, hdr.Get("Content-Disposition"))
			}
			// The console's route decides alike.
			resp, _ := ts.page(http.MethodGet, "/ui/sessions/"+run.SessionID+"/files/"+listed[0].ID, tt.key, nil)
			require.Equal(t, tt.status, resp.StatusCode)
		})
	}
	status, _, _ := ts.do(http.MethodGet, "/sessions/"+run.SessionID+"/files", bobKey, "", "")
	require.Equal(t, http.StatusNotFound, status)
	// A file id under another session is not found either.
	status, _, _ = ts.do(http.MethodGet, "/sessions/nope/files/"+listed[0].ID, adminKey, "", "")
	require.Equal(t, http.StatusNotFound, status)

	// The session page shows the image as a thumbnail and the text file as
	// a link, through the console's route.
	resp, page := ts.page(http.MethodGet, "/ui/sessions/"+run.SessionID, aliceKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	uiURL := "/ui/sessions/" + run.SessionID + "/files/"
	require.Contains(t, page, `<img class="thumb" src="`+uiURL+listed[0].ID+`" alt="cat.png" loading="lazy" data-testid="run-file-image">`)
	require.Contains(t, page, `<a href="`+uiURL+listed[1].ID+`" class="file-link" data-testid="run-file">notes.txt`)

	// Deleting the session deletes the files' bytes.
	require.Len(t, storedFiles(t, dir), 2)
	ts.json(http.MethodDelete, "/sessions/"+run.SessionID, aliceKey, "", http.StatusNoContent, nil)
	require.Empty(t, storedFiles(t, dir))
	status, _, _ = ts.do(http.MethodGet, listed[0].URL, adminKey, "", "")
	require.Equal(t, http.StatusNotFound, status)
}

func storedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	}))
	return out
}

// TestConsoleChatFiles: the chat form has a file input when the server
// keeps files, and a chat turn posted as a multipart form with a file
// gives the model the file's text.
func TestConsoleChatFiles(t *testing.T) {
	t.Parallel()
	script := fake.New(fake.Step{Content: "got it"})
	ts := startServer(t, withFiles(t.TempDir(), files.Limits{}), withProvider("anthropic", script), withSpecs(historyModels+"kind: Agent\nname: reader\nmodel: scripted\n"))
	resp, page := ts.page(http.MethodGet, "/ui/agents/reader", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, `<input type="file" name="files" multiple`)

	ct, body := multipartRun(t, map[string]string{"message": "read it"}, runUpload{"todo.txt", []byte("buy bread")})
	status, out, _ := ts.do(http.MethodPost, "/ui/agents/reader/chat", "", ct, body)
	require.Equal(t, http.StatusOK, status, out)
	require.Contains(t, out, "got it")
	reqs := script.Requests()
	require.Len(t, reqs, 1)
	require.Equal(t, "read it\n\n<attached_file name=\"todo.txt\" type=\"text/plain\">\nbuy bread\n</attached_file>", reqs[0].Messages[0].Content)

	// Without files the page has no file input.
	bare := startServer(t)
	_, page = bare.page(http.MethodGet, "/ui/agents/writer", "", nil)
	require.NotContains(t, page, `type="file"`)
}

// TestRunImageModelWithoutVision: Troupe cannot know which served model
// sees images (an OpenAI-wire server may serve anything), so it sends them;
// a model without vision is answered with its server's refusal as the
// run's error.
func TestRunImageModelWithoutVision(t *testing.T) {
	t.Parallel()
	blind := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"message":"Invalid content type. image_url is only supported by certain models.","type":"invalid_request_error"}}`)
	}))
	t.Cleanup(blind.Close)
	specs := "kind: Model\nname: blind\nprovider: openai\nmodel: text-only\nbase_url: " + blind.URL + "\napi_key: sk-test\nretries: 0\n---\n" +
		"kind: Agent\nname: reader\nmodel: blind\n"
	ts := startServer(t, withFiles(t.TempDir(), files.Limits{}), withSpecs(specs))
	ct, body := multipartRun(t, map[string]string{"message": "what is this?", "stream": "false"}, runUpload{"cat.png", testPNG(t)})
	status, out, _ := ts.do(http.MethodPost, "/agents/reader/runs", "", ct, body)
	require.Equal(t, http.StatusOK, status, out)
	var run struct{ Status, Error string }
	require.NoError(t, json.Unmarshal([]byte(out), &run))
	require.Equal(t, "ERROR", run.Status)
	require.Contains(t, run.Error, "image_url is only supported by certain models")
}
