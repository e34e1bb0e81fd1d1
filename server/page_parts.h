// What the coordinator's pages (status_page.cc, job_page.cc) share, so
// that they look alike and ask for the token alike: a style sheet, and a
// script with the helpers that read the JSON endpoints.
#pragma once

namespace retrain::server {

// CSS rules (no <style> element): the page, headings, tables, job states
// (class "state-<STATE>"), #status, #login, .muted and progress bars
// (<span class="bar"><span style="width: N%"></span></span>).
const char* PageStyle();

// JavaScript (no <script> element), strict mode. Defines:
//   short(s, prefix)     s without prefix ("JOB_STATE_RUNNING" -> "RUNNING")
//   cell(row, text, cls) appends a <td> with text (and class) to a row
//   get(path)            fetches JSON with the client token from the tab's
//                        sessionStorage; throws Error("401") when the server
//                        needs a token, else Error(<the server's message>)
//                        with `answered` set, or fetch's own error when
//                        the server did not answer
//   showFailure(e)       says why a refresh failed in #status, and shows
//                        the #login form on "401"
//   onLogin(refresh)     keeps the token typed into #login and refreshes
// The page provides elements #status and #login (a form with input #token).
const char* PageScript();

}  // namespace retrain::server
