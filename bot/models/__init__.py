"""The schema, a module per area; `from bot.models import X` is how the rest of the bot reads it.

Importing this package registers every table on `Base.metadata` (Alembic's env and the migration
test compare against it). Money is integer cents; every timestamp is timezone-aware UTC.

The event pipeline's names (`StockEventKind`, `CUSTOMER_FACING`, the lanes, `event_lane`) live in
`bot/pipeline.py` and are named here too, since the stock event table and its readers go together.
"""

from bot.models.catalog import CatalogVersion, Product
from bot.models.common import NAMING, Base, UTCDateTime, cents_to_decimal, utcnow
from bot.models.customers import (
    Customer,
    CustomerTier,
    InviteToken,
    Role,
    StaffMember,
    TelegramUser,
)
from bot.models.delivery import (
    DailyMessageCount,
    Notification,
    NotificationFile,
    NotificationState,
    SendGate,
)
from bot.models.infra import (
    BotIdentity,
    ConversationState,
    EventLease,
    JobRun,
    SeenOnce,
    ShopifyInventoryItem,
    WebhookDelivery,
)
from bot.models.orders import OPEN_STATUSES, Order, OrderLine, OrderStatus
from bot.models.planning import (
    ACTIVE_PROMPT_STATUSES,
    CoverWarning,
    DemandForecast,
    PlanningDirty,
    PlanningState,
    PromptStatus,
    PurchaseOrder,
    ReorderPrompt,
    ReplenishmentPolicy,
    SalesDay,
    StockTransfer,
    TransferStatus,
)
from bot.models.recovery import (
    Coupon,
    OfferStatus,
    Reservation,
    Restock,
    StockoutOffer,
    StockoutPlan,
    WaitlistEntry,
    WaitStatus,
)
from bot.models.stock import (
    DEMAND_REASONS,
    BatchStatus,
    ContactBatch,
    MovementKind,
    MovementReason,
    StockEvent,
    StockLevel,
    StockMovement,
    Warehouse,
)
from bot.pipeline import (
    AWAITING_LANE,
    BOOKKEEPING_LANE,
    BULK_LANE,
    CUSTOMER_FACING,
    LIVE_LANE,
    StockEventKind,
    event_lane,
)

__all__ = [
    "ACTIVE_PROMPT_STATUSES", "AWAITING_LANE", "BOOKKEEPING_LANE", "BULK_LANE", "CUSTOMER_FACING",
    "DEMAND_REASONS", "LIVE_LANE", "NAMING", "OPEN_STATUSES",
    "Base", "BatchStatus", "BotIdentity", "CatalogVersion", "ContactBatch", "ConversationState",
    "Coupon", "CoverWarning", "Customer", "CustomerTier", "DailyMessageCount", "DemandForecast",
    "EventLease", "InviteToken", "JobRun", "MovementKind", "MovementReason", "Notification",
    "NotificationFile", "NotificationState", "OfferStatus", "Order", "OrderLine", "OrderStatus",
    "PlanningDirty", "PlanningState", "Product", "PromptStatus", "PurchaseOrder", "ReorderPrompt",
    "ReplenishmentPolicy", "Reservation", "Restock", "Role", "SalesDay", "SeenOnce", "SendGate",
    "ShopifyInventoryItem", "StaffMember", "StockEvent", "StockEventKind", "StockLevel",
    "StockMovement", "StockTransfer", "StockoutOffer", "StockoutPlan", "TelegramUser",
    "TransferStatus", "UTCDateTime", "WaitStatus", "WaitlistEntry", "Warehouse", "WebhookDelivery",
    "cents_to_decimal", "event_lane", "utcnow",
]
