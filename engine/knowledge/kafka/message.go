// Package kafka keeps knowledge bases in sync with Kafka topics: each
// message upserts or deletes one document, and offsets are committed only
// once the index is written (at-least-once delivery, exactly-once effect,
// since a document's id is its message id and content hash). It is the one
// package that imports the Kafka client (franz-go).
package kafka

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
)

// Operations a message may ask for.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// Message is one document event on the topic.
type Message struct {
	// ID names the document; producers should also use it as the record
	// key, so that a document's versions stay in order on one partition.
	ID string `json:"id"`
	// Op is upsert (the default) or delete.
	Op string `json:"op,omitempty"`
	// Text or URL is the document's content (upsert only).
	Text *string `json:"text,omitempty"`
	URL  string  `json:"url,omitempty"`
	// Name is the document's file name, whose extension picks the reader
	// (default <id>.txt for text, the URL's file name for a URL).
	Name     string         `json:"name,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// errPoison marks a message that can never be applied: it goes to the
// dead-letter topic at once, without retries.
var errPoison = errors.New("invalid message")

// maxIDLength bounds a document id, which becomes part of a stored source.
const maxIDLength = 512

// Parse decodes and checks a message value.
func Parse(value []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(value, &m); err != nil {
		return m, fmt.Errorf("%w: not a JSON document message ({id, text | url, metadata, op}): %w", errPoison, err)
	}
	switch {
	case m.ID == "":
		return m, fmt.Errorf("%w: missing id", errPoison)
	case len(m.ID) > maxIDLength:
		return m, fmt.Errorf("%w: id is longer than %d bytes", errPoison, maxIDLength)
	}
	switch m.Op {
	case "", OpUpsert:
		m.Op = OpUpsert
		if (m.Text == nil) == (m.URL == "") {
			return m, fmt.Errorf("%w: an upsert needs text or url (one of them)", errPoison)
		}
		if m.Name == "" && m.Text != nil {
			m.Name = m.ID + ".txt"
			if path.Ext(m.ID) != "" {
				m.Name = m.ID
			}
		}
	case OpDelete:
	default:
		return m, fmt.Errorf("%w: op %q: use upsert or delete", errPoison, m.Op)
	}
	return m, nil
}

// key is the source a message's document is stored under.
func key(id string) string { return "kafka:" + id }
