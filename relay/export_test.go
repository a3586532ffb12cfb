package relay

// OutboxTempPrefix lets tests build the name a crash would leave behind.
var OutboxTempPrefix = tempPrefix
