package web

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/xuri/excelize/v2"
)

type importReport struct {
	Rows, Inserted, Updated, Unchanged, Rejected int
	Errors                                       []struct {
		Line     int
		Problems []struct{ Path, Message string }
	}
}

func TestImportCSVIdempotent(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	file := "code,name,industry,revenue,tags,active\n" +
		"A1,Alpha,tech,100.10,vip;partner,true\n" +
		"A2,\"Beta, Inc.\",retail,200.20,,false\n" +
		"A3,Gamma,space,300.30,,\n" + // invalid enum on line 4
		"A4,Delta,,400.40,new,yes\n" +
		",NoCode,tech,1,,\n" // the key is required: line 6
	var rep importReport
	job := uuid.New().String()
	b.expect("POST", "/api/v1/data/account/import?key=code&job="+job, file, 200, &rep, "Content-Type", "text/csv")
	if rep.Rows != 5 || rep.Inserted != 3 || rep.Rejected != 2 {
		t.Fatalf("first import: %+v", rep)
	}
	if rep.Errors[0].Line != 4 || rep.Errors[0].Problems[0].Path != "/industry" || rep.Errors[1].Line != 6 {
		t.Errorf("rejections: %+v", rep.Errors)
	}
	var status struct {
		Status   string
		RowsRead int `json:"rows_read"`
	}
	b.expect("GET", "/api/v1/imports/"+job, nil, 200, &status)
	if status.Status != "completed" || status.RowsRead != 5 {
		t.Errorf("job status %+v", status)
	}
	// The same file again changes nothing.
	b.expect("POST", "/api/v1/data/account/import?key=code", file, 200, &rep)
	if rep.Inserted != 0 || rep.Updated != 0 || rep.Unchanged != 3 {
		t.Fatalf("second import: %+v", rep)
	}
	var list struct{ Total int }
	b.expect("GET", "/api/v1/data/account", nil, 200, &list)
	if list.Total != 3 {
		t.Fatalf("%d accounts after two imports, want 3", list.Total)
	}
	// A changed row updates; an empty cell does not erase.
	b.expect("POST", "/api/v1/data/account/import?key=code", "code,name,revenue\nA1,Alpha GmbH,\n", 200, &rep)
	if rep.Updated != 1 {
		t.Fatalf("update import: %+v", rep)
	}
	var acc struct {
		Items []map[string]any
	}
	b.expect("GET", `/api/v1/data/account?filter=`+urlQuery(`code == "A1"`), nil, 200, &acc)
	if acc.Items[0]["name"] != "Alpha GmbH" || acc.Items[0]["revenue"] != "100.10" || acc.Items[0]["version"] != float64(2) {
		t.Errorf("after update import: %v", acc.Items[0])
	}
	var hist struct{ Items []struct{ Op string } }
	b.expect("GET", fmt.Sprintf("/api/v1/data/account/%s/history", acc.Items[0]["id"]), nil, 200, &hist)
	if len(hist.Items) != 2 {
		t.Errorf("history after import: %+v", hist.Items)
	}
}

func TestImportRejectsBadFiles(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	var e apiError
	b.expect("POST", "/api/v1/data/account/import?key=code", "code,nmae\nA1,x\n", 400, &e)
	if !strings.Contains(e.Error.Message, "nmae") {
		t.Errorf("unknown column message: %s", e.Error.Message)
	}
	b.expect("POST", "/api/v1/data/account/import?key=name", "code,name\nA1,x\n", 400, nil)
	b.expect("POST", "/api/v1/data/account/import?key=code&format=xml", "x", 400, nil)
	var rep importReport
	ndjson := `{"code": "N1", "name": "One", "employees": 5}
not json
{"code": "N2", "name": "Two", "bogus": 1}
{"code": "N3", "name": "Three", "revenue": "3.30"}
`
	b.expect("POST", "/api/v1/data/account/import?key=code&format=ndjson", ndjson, 200, &rep)
	if rep.Inserted != 2 || rep.Rejected != 2 || rep.Errors[0].Line != 2 || rep.Errors[1].Line != 3 {
		t.Fatalf("ndjson import: %+v", rep)
	}
}

func TestExportCSVAndXLSX(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	for i := range 30 {
		b.create("account", map[string]any{"name": fmt.Sprintf("Acc %02d", i), "code": fmt.Sprintf("C%02d", i),
			"revenue": fmt.Sprintf("%d.05", i), "tags": []string{"vip", "new"}[:i%3%2+1]})
	}
	resp := b.expect("GET", "/api/v1/data/account/export?format=csv&sort=code&filter="+urlQuery(`revenue >= "10"`), nil, 200, nil)
	rows, err := csv.NewReader(bytes.NewReader(resp.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 21 || rows[0][0] != "id" || rows[1][2] != "C10" {
		t.Fatalf("csv export: %d rows, first %v %v", len(rows), rows[0], rows[1])
	}
	// What was exported imports back as unchanged.
	var rep importReport
	b.expect("POST", "/api/v1/data/account/import?key=code", resp.Body, 200, &rep)
	if rep.Unchanged != 20 || rep.Rejected != 0 {
		t.Fatalf("re-import of export: %+v", rep)
	}

	resp = b.expect("GET", "/api/v1/data/account/export?format=xlsx&fields=code,revenue&sort=code", nil, 200, nil)
	f, err := excelize.OpenReader(bytes.NewReader(resp.Body))
	if err != nil {
		t.Fatal(err)
	}
	xrows, err := f.GetRows("Sheet1")
	if err != nil {
		t.Fatal(err)
	}
	if len(xrows) != 31 || xrows[0][1] != "code" || xrows[1][1] != "C00" || xrows[1][2] != "0.05" {
		t.Fatalf("xlsx: %d rows, %v %v", len(xrows), xrows[0], xrows[1])
	}
	b.expect("GET", "/api/v1/data/account/export?format=pdf", nil, 400, nil)
	b.expect("GET", "/api/v1/data/account/export?filter="+urlQuery("nope == 1"), nil, 400, nil)
}
