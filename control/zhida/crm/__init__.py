"""The CRM and administration API: CallEventService (live events, call records, feedback) and AdminService.

Host it inside the controller's process with `zhida.crm.server.add_services`, or alone with `zhida serve-api`.
"""
