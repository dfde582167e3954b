// Package medicalrecords is the medical records assistant of the seed design: a clinician asks
// about a patient, the agent reads the record through get_patient_record with a purpose of use,
// and every access is recorded with its subject and purpose, so the access report for a patient
// lists who saw what, when and why. An emergency access is recorded as break-glass with its reason.
//
// The record's identifying fields (patient_name, ssn, date_of_birth, address, phone) are what the
// sanitization policy pseudonymizes before anything is written.
package medicalrecords

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/examples/scriptedmodel"
)

// Model is the model the agent asks for.
const Model = "claude-opus-4-6"

// The two requests the scripted model answers.
const (
	RoutineRequest   = "What allergies does patient P-123 have? Routine visit."
	EmergencyRequest = "EMERGENCY: patient P-123 is unconscious in the ER, what are the allergies?"
)

// Script is what the scripted model answers.
func Script() map[string][]scriptedmodel.Turn {
	lookup := func(purpose string) scriptedmodel.Turn {
		return scriptedmodel.Turn{Blocks: []scriptedmodel.Block{{ToolID: "toolu_p1", ToolName: "get_patient_record",
			Input: map[string]any{"patient_id": "P-123", "sections": "allergies", "purpose": purpose}}}, InputTokens: 640, OutputTokens: 38}
	}
	answer := scriptedmodel.Turn{Blocks: []scriptedmodel.Block{{Text: "Patient P-123 is allergic to penicillin (severe) and latex."}}, InputTokens: 790, OutputTokens: 22}
	return map[string][]scriptedmodel.Turn{
		"Routine visit":         {lookup("treatment"), answer},
		"unconscious in the ER": {lookup("emergency_treatment"), answer},
	}
}

var patients = map[string]map[string]any{
	"P-123": {
		"patient_id": "P-123", "patient_name": "Maria Garcia", "ssn": "123-45-6789", "date_of_birth": "1961-04-12",
		"address": "12 Elm Street, Springfield", "phone": "+1 555 010 7788",
		"allergies": []string{"penicillin (severe)", "latex"},
	},
}

// Clinician is who asks.
type Clinician struct {
	UserID, Role     string
	BreakGlassReason string // set for an emergency override
}

// Run answers one clinician's request and returns the session id.
func Run(ctx context.Context, rec *agentaudit.Recorder, baseURL, apiKey string, who Clinician, request string) (string, error) {
	client := anthropic.NewClient(option.WithBaseURL(baseURL), option.WithAPIKey(apiKey),
		option.WithHTTPClient(rec.HTTPClient()), option.WithMaxRetries(0))
	ctx, sess, err := rec.StartSession(ctx, agentaudit.SessionInfo{
		UserID: who.UserID, UserRole: who.Role, AgentID: "medical-records-v2", AgentVersion: "2.0.1", Model: Model,
		SystemPrompt: "You answer clinicians' questions from the patient record. Always state the purpose of use.",
	})
	if err != nil {
		return "", err
	}
	getRecord := agentaudit.WrapTool(rec, "get_patient_record", func(ctx context.Context, a map[string]string) (map[string]any, error) {
		p, ok := patients[a["patient_id"]]
		if !ok {
			return nil, fmt.Errorf("no patient %q", a["patient_id"])
		}
		return p, nil
	},
		agentaudit.ToolMode(agentaudit.FailClosed), // no record read without its audit record
		agentaudit.ToolSubject(func(a any) (string, string, string) {
			m := a.(map[string]string)
			return "patient", m["patient_id"], m["purpose"]
		}))

	sess.NextTurn()
	tools := []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{Name: "get_patient_record",
		InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{
			"patient_id": map[string]any{"type": "string"}, "sections": map[string]any{"type": "string"}, "purpose": map[string]any{"type": "string"}}}}}}
	messages := []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(request))}
	for range 5 {
		msg, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: Model, MaxTokens: 1024, Messages: messages, Tools: tools})
		if err != nil {
			sess.Error(ctx, err)
			sess.End(ctx, event.OutcomeError)
			return "", err
		}
		messages = append(messages, msg.ToParam())
		if msg.StopReason != anthropic.StopReasonToolUse {
			var answer string
			for _, b := range msg.Content {
				answer += b.Text
			}
			sess.FinalOutput(ctx, answer)
			return sess.ID(), sess.End(ctx, event.OutcomeSuccess)
		}
		var results []anthropic.ContentBlockParamUnion
		for _, b := range msg.Content {
			if b.Type != "tool_use" {
				continue
			}
			var a map[string]string
			if err := json.Unmarshal(b.Input, &a); err != nil {
				results = append(results, anthropic.NewToolResultBlock(b.ID, "invalid input", true))
				continue
			}
			if who.BreakGlassReason != "" {
				// The override is recorded before the record is read.
				if err := sess.Access(ctx, agentaudit.Access{SubjectType: "patient", SubjectID: a["patient_id"], Purpose: a["purpose"],
					Tool: b.Name, BreakGlassReason: who.BreakGlassReason}); err != nil {
					return "", err
				}
			}
			out, err := getRecord(agentaudit.WithToolCallID(ctx, b.ID), a)
			if err != nil {
				results = append(results, anthropic.NewToolResultBlock(b.ID, err.Error(), true))
				continue
			}
			data, _ := json.Marshal(out)
			results = append(results, anthropic.NewToolResultBlock(b.ID, string(data), false))
		}
		messages = append(messages, anthropic.NewUserMessage(results...))
	}
	return "", errors.New("medicalrecords: no answer after 5 model calls")
}
