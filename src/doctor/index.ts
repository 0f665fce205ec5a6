/** `ssehub/doctor`: diagnose an SSE endpoint through whatever stands in front of it. */
export { COMMON_TIMEOUTS, type Finding, LATE_MS, type Probe, type ResumeResult, type Severity, checkProbes, checkResponse, checkResume, checkStream, heartbeatOf, isEventStream } from './checks.js';
export { type ConnectOptions, type Observation, ObservedStream, type SeenEvent } from './connection.js';
export { type DoctorOptions, type DoctorReport, runDoctor } from './doctor.js';
export { formatReport } from './report.js';
export { UPGRADE_FIX, type WebSocketDoctorOptions, type WebSocketDoctorReport, type WebSocketObservation, checkWebSocket, formatWebSocketReport, runWebSocketDoctor } from './websocket.js';
