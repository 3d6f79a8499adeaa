package editor

// The wire types name their schemas in the API's OpenAPI document, apart
// from the API's own types of similar names (its Reload, its diagnostics).

func (FileList) OpenAPIName() string      { return "EditorFiles" }
func (FileInfo) OpenAPIName() string      { return "EditorFile" }
func (Template) OpenAPIName() string      { return "EditorTemplateKind" }
func (Content) OpenAPIName() string       { return "EditorContent" }
func (SaveRequest) OpenAPIName() string   { return "EditorSave" }
func (Saved) OpenAPIName() string         { return "EditorSaved" }
func (Reload) OpenAPIName() string        { return "EditorReload" }
func (Conflict) OpenAPIName() string      { return "EditorConflict" }
func (CheckRequest) OpenAPIName() string  { return "EditorCheck" }
func (CheckResponse) OpenAPIName() string { return "EditorDiagnostics" }
func (Diagnostic) OpenAPIName() string    { return "EditorDiagnostic" }
func (RenameRequest) OpenAPIName() string { return "EditorRename" }
func (Filled) OpenAPIName() string        { return "EditorTemplate" }
func (AuditList) OpenAPIName() string     { return "EditorAuditList" }
func (AuditEntry) OpenAPIName() string    { return "EditorAuditEntry" }
