"""GET /api/doctor: the doctor's checks as JSON, for the web page's setup panel."""

from __future__ import annotations

from fastapi import APIRouter

from callcheck.doctor import DoctorReport
from callcheck.edge.deps import ServicesDep
from callcheck.providers import caller_for

router = APIRouter(prefix="/api", tags=["meta"])


@router.get("/doctor", summary="Check the set-up")
async def doctor(services: ServicesDep) -> DoctorReport:
    """Every check of `callcheck doctor` (settings by name only, never their values); 200 even when some fail.

    The report is at most a minute old (DoctorCache): each run asks ElevenLabs with the API key."""
    return await services.doctor.report(services.settings, caller_for(services))
